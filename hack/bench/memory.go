package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/memlimit"
	"github.com/roster-dev/roster/internal/testenv/rig"
)

// load creates n objects made by mk with cfg.Creators workers, as the admin, and logs its
// progress.
func (b *bench) load(ctx context.Context, p *plane, what string, n int, mk func(i int) client.Object) (time.Duration, error) {
	var done atomic.Int64
	start := time.Now()
	stopLog := make(chan struct{})
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopLog:
				return
			case <-t.C:
				b.logf("  %s: %s of %s created", what, thousands(int(done.Load())), thousands(n))
			}
		}
	}()
	_, err := b.inParallel(ctx, n, true, func(i int) error {
		defer done.Add(1)
		return rig.CreateRetrying(ctx, p.admin, mk(i))
	})
	close(stopLog)
	if err != nil {
		return time.Since(start), err
	}
	return time.Since(start), ctx.Err()
}

// member is a signed-up, active member an admin added directly, with the details people
// have.
func member(o org, prefix string, i int) *rosterv1.Member {
	name := fmt.Sprintf("%s-%d", prefix, i)
	return &rosterv1.Member{
		ObjectMeta: nameIn(o, name),
		Spec: rosterv1.MemberSpec{
			OrganizationRef: rosterv1.OrganizationReference{Name: o.name},
			Username:        name, DisplayName: fmt.Sprintf("Person %d of %s", i, prefix), Email: name + "@acme.example",
			Phone:       fmt.Sprintf("+4930%08d", i),
			WorkDetails: rosterv1.WorkDetails{Department: departments[i%len(departments)], Position: "Engineer", Location: "Berlin", WorkNumber: "+49 30 1234-100"},
			Role:        rosterv1.RoleMember, Access: rosterv1.AccessActive,
		},
	}
}

var departments = []string{"Engineering", "Sales", "People Operations", "Finance", "Support", "Marketing"}

// externalUser is a client of the support portal with an email, so they get a link.
func externalUser(o org, prefix string, i int) *rosterv1.ExternalUser {
	name := fmt.Sprintf("%s-%d", prefix, i)
	return &rosterv1.ExternalUser{
		ObjectMeta: nameIn(o, name),
		Spec: rosterv1.ExternalUserSpec{
			OrganizationRef: rosterv1.OrganizationReference{Name: o.name},
			Application:     "support-portal", DisplayName: fmt.Sprintf("Client %d", i), Email: name + "@partner.example",
			Company: fmt.Sprintf("Partner %d GmbH", i%50), Title: "Buyer",
		},
	}
}

// memoryAt is what the manager process holds.
type memoryAt struct {
	RSS      float64 `json:"rssMiB"`
	RSSFile  float64 `json:"rssFileMiB"`
	PeakRSS  float64 `json:"peakRssMiB"`
	HeapLive int     `json:"heapLiveMiB"`
	HeapPeak int     `json:"heapLivePeakMiB"`
	HeapOK   bool    `json:"heapKnown"`
	Settle   float64 `json:"settleSeconds"`
}

func measure(proc *rig.Process) (memoryAt, error) {
	m, err := memoryOf(proc.Pid())
	if err != nil {
		return memoryAt{}, err
	}
	last, peak, ok := liveHeap(proc.LogPath)
	return memoryAt{RSS: m.RSS, RSSFile: m.File, PeakRSS: m.PeakRSS, HeapLive: last, HeapPeak: peak, HeapOK: ok}, nil
}

// restartAndMeasure stops the manager, if one runs, starts a new one (which lists everything
// into its cache and reconciles every object once, as after a crash or an upgrade), waits
// until it is idle and measures it: the manager's memory with the objects cached and nothing
// to do. It also counts the API writes of that catch-up: for objects copied into etcd from
// templates (fill), a write for each would say the copies are not what Roster makes.
func (b *bench) restartAndMeasure(ctx context.Context, p *plane, mgr *rig.Process, counted org, members int, limitMiB int) (*rig.Process, memoryAt, tally, error) {
	if mgr != nil {
		p.stopProcess(mgr)
	}
	var env []string
	if limitMiB > 0 {
		// What internal/memlimit sets in a container with this memory limit.
		env = append(env, fmt.Sprintf("GOMEMLIMIT=%d", memlimit.For(int64(limitMiB)<<20)))
	}
	before, _, err := p.apiRequests(ctx)
	if err != nil {
		return nil, memoryAt{}, nil, err
	}
	t0 := time.Now()
	fresh, err := p.startManager("manager-restarted", rig.ManagerOptions{}, env...)
	if err != nil {
		return nil, memoryAt{}, nil, err
	}
	// Idle alone is not enough: a manager waiting for a long list from the API server is
	// idle too.
	if err := p.waitCounted(ctx, counted, members, b.cfg.Timeout); err != nil {
		return fresh, memoryAt{}, nil, err
	}
	if _, err := waitIdle([]*rig.Process{fresh}, b.cfg.Timeout); err != nil {
		return fresh, memoryAt{}, nil, fmt.Errorf("the restarted manager did not settle: %w", err)
	}
	settle := max(time.Since(t0)-idleWindow, 0) // from its start to the start of the quiet spell
	// The heap profile asks for a garbage collection first, so the live heap that
	// GODEBUG=gctrace reports next is what the cache holds, without the catch-up's garbage.
	b.saveProfile(ctx, http.DefaultClient, "http://"+p.pprof[fresh]+"/debug/pprof/heap?gc=1", "heap-"+counted.ns, "-sample_index=inuse_space")
	time.Sleep(time.Second)
	m, err := measure(fresh)
	m.Settle = settle.Seconds()
	after, _, aerr := p.apiRequests(ctx)
	if err == nil {
		err = aerr
	}
	writes := after.since(before)
	delete(writes, "leases PUT") // leader election
	return fresh, m, writes, err
}

// waitCounted waits until organization o's status counts want members: the manager's cache
// holds them all, since the counts come from its events, and its controllers started.
func (p *plane) waitCounted(ctx context.Context, o org, want int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		got := &rosterv1.Organization{}
		err := p.admin.Get(ctx, client.ObjectKey{Namespace: o.ns, Name: o.name}, got)
		if c := got.Status.Members; err == nil && int(c.Inactivated+c.Pending+c.Active+c.Rejected+c.Terminated) >= want {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			list := &metav1.PartialObjectMetadataList{}
			list.SetGroupVersionKind(rosterv1.GroupVersion.WithKind("MemberList"))
			lerr := p.admin.List(ctx, list, client.InNamespace(o.ns))
			return fmt.Errorf("after %s Organization %s counts %+v members, not %d; the API server lists %d (%v) (last error: %v)",
				within, o.name, got.Status.Members, want, len(list.Items), lerr, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// templateCount is how many members or external users go the whole way through the API
// server and Roster before the rest are copied from them (see clone.go): one a department,
// so that each copy carries its department's label.
const templateCount = 6

// fill puts n objects of kind in organization o: the first templateCount, named
// <prefix>-tmpl-<i>, made by mk through the API server and finished by the manager; then,
// with the manager stopped, the rest copied from them into etcd, named <prefix>-<i>. It
// returns how long the copies took; the manager is stopped.
func (b *bench) fill(ctx context.Context, p *plane, mgr *rig.Process, kind, what string, o org, prefix string, n int,
	mk func(prefix string, i int) client.Object) (time.Duration, error) {
	k := min(templateCount, n)
	if _, err := b.load(ctx, p, what+" (templates)", k, func(i int) client.Object { return mk(prefix+"-tmpl", i) }); err != nil {
		return 0, err
	}
	if _, err := waitIdle([]*rig.Process{mgr}, b.cfg.Timeout); err != nil {
		return 0, err
	}
	names := make([]string, k)
	for i := range names {
		names[i] = mk(prefix+"-tmpl", i).GetName()
	}
	sets, err := templates(ctx, p.admin, kind, o.ns, names)
	if err != nil {
		return 0, err
	}
	p.stopProcess(mgr)
	took, err := b.cloneLoad(ctx, p, what, sets, k, n, func(i int) string { return mk(prefix, i).GetName() })
	if err != nil {
		return took, err
	}
	return took, p.waitListed(ctx, kind, o.ns, n, b.cfg.Timeout)
}

// waitListed waits until the API server's watch cache holds n objects of kind in namespace.
// The copies went into etcd a hundred to a transaction, and the API server assumes one
// object a revision: a list it served from its cache in the middle of a transaction's
// events, and a watch from there, would miss the rest of that transaction. The manager
// starts once nothing is in the middle any more.
func (p *plane) waitListed(ctx context.Context, kind, namespace string, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	// Each look lists every object: at a hundred thousand, looking twice a second would keep
	// the API server from taking in the very objects it waits for.
	pause := 500 * time.Millisecond
	for {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(rosterv1.GroupVersion.WithKind(kind + "List"))
		err := p.admin.List(ctx, list, client.InNamespace(namespace), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}})
		if err == nil && len(list.Items) >= n {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("after %s the API server's cache lists %d %ss of %d (last error: %v)", within, len(list.Items), kind, n, err)
		}
		time.Sleep(pause)
		pause = min(2*pause, 4*time.Second)
	}
}

// catchUp describes the writes of a manager's catch-up for the table.
func catchUp(w tally, objects int) string {
	s := fmt.Sprintf("%.0f API writes in the catch-up over %s objects", w.total(), thousands(objects))
	if w.total() > 0 {
		s += " (" + w.String() + ")"
	}
	return s
}

// memoryResult describes the manager with objects cached, in a container of limitMiB: the
// shipped manager sets its Go memory limit from the container's (internal/memlimit), so that
// is how it runs, and its peak is what the container's limit must hold.
func memoryResult(m memoryAt, objects int, empty memoryAt, limitMiB int) string {
	s := fmt.Sprintf("in a %d MiB container (GOMEMLIMIT %.0f MiB): RSS %.0f MiB (%.0f MiB of it file pages), peak %.0f MiB while starting (idle after %s)",
		limitMiB, float64(memlimit.For(int64(limitMiB)<<20))/(1<<20), m.RSS, m.RSSFile, m.PeakRSS, secs(m.Settle))
	if m.HeapOK {
		s += fmt.Sprintf("; heap %d MiB live", m.HeapLive)
	}
	if objects > 0 && m.HeapOK && empty.HeapOK {
		s += fmt.Sprintf(", %.1f KiB per object above an empty manager (%d MiB)", float64(m.HeapLive-empty.HeapLive)*1024/float64(objects), empty.HeapLive)
	}
	return s
}

// memoryVerdict judges the RSS goal where the run had the goal's size: the peak in a
// container with the goal as its limit, since a container that passes its limit once is
// killed. A run scaled down (quick mode) would meet an RSS goal set for many more objects
// whatever each costs, so it is judged by what each object adds to the heap instead: about
// 4 KiB.
func memoryVerdict(m, empty memoryAt, objects int, goalMiB float64, fullSize bool) string {
	if fullSize {
		return verdict(m.PeakRSS < goalMiB)
	}
	if !m.HeapOK || !empty.HeapOK || objects == 0 {
		return "not measured: scaled down, heap unknown"
	}
	perObject := float64(m.HeapLive-empty.HeapLive) * 1024 / float64(objects)
	return verdict(perObject <= 4) + " (per object; scaled down)"
}

// memoryPlane caches cfg.Members Members and cfg.Externals ExternalUsers in one
// organization on a fresh control plane and measures the manager.
func (b *bench) memoryPlane(ctx context.Context) {
	r := row{Section: "Memory", What: fmt.Sprintf("%s Members + %s ExternalUsers cached", thousands(b.cfg.Members), thousands(b.cfg.Externals)),
		Goal: "< 250 MiB RSS (at 10,000 + 10,000), ~4 KiB/object"}
	b.logf("starting a fresh control plane for %s", r.What)
	p, err := b.startPlane("memory")
	if err != nil {
		b.add(failed(r, err))
		return
	}
	defer p.stop()
	sink, _, err := newSink()
	if err != nil {
		b.add(failed(r, err))
		return
	}
	defer sink.Close()
	mgr, err := p.startManager("manager", rig.ManagerOptions{})
	if err != nil {
		b.add(failed(r, err))
		return
	}
	o, err := p.newOrg(ctx, "mem", sink, "", func(o *rosterv1.Organization) {
		o.Spec.Applications = []rosterv1.Application{{Name: "support-portal", DisplayName: "Support",
			Portal: rosterv1.Portal{Enabled: true}, License: rosterv1.License{Seats: int32(b.cfg.Externals)}}}
	})
	if err == nil {
		err = p.waitReady(ctx, []org{o}, 2*time.Minute)
	}
	if err != nil {
		b.add(failed(r, err))
		return
	}
	if _, err := waitIdle([]*rig.Process{mgr}, b.cfg.Timeout); err != nil {
		b.add(failed(r, err))
		return
	}
	base, _ := measure(mgr)
	b.logf("memory: the manager with an empty organization: RSS %.0f MiB", base.RSS)

	membersIn, err := b.fill(ctx, p, mgr, "Member", "members", o, "m", b.cfg.Members, func(prefix string, i int) client.Object { return member(o, prefix, i) })
	if err != nil {
		b.add(failed(r, err))
		return
	}
	mgr, err = p.startManager("manager", rig.ManagerOptions{})
	if err != nil {
		b.add(failed(r, err))
		return
	}
	externalsIn, err := b.fill(ctx, p, mgr, "ExternalUser", "external users", o, "x", b.cfg.Externals, func(prefix string, i int) client.Object {
		return externalUser(o, prefix, i)
	})
	if err != nil {
		b.add(failed(r, err))
		return
	}
	b.logf("memory: copied in %s and %s; starting the manager on them", secs(membersIn.Seconds()), secs(externalsIn.Seconds()))
	_, limited, writes, err := b.restartAndMeasure(ctx, p, nil, o, b.cfg.Members, 250)
	if err != nil {
		b.add(failed(r, err))
		return
	}
	objects := b.cfg.Members + b.cfg.Externals
	r.Result = memoryResult(limited, objects, base, 250) + "; " + catchUp(writes, objects)
	r.Met = memoryVerdict(limited, base, objects, 250, b.cfg.Members >= 10000 && b.cfg.Externals >= 10000)
	r.Values = map[string]any{"members": b.cfg.Members, "externalUsers": b.cfg.Externals, "emptyManager": base,
		"containerMiB": 250, "underLimit": limited, "copySeconds": membersIn.Seconds() + externalsIn.Seconds(), "catchUpWrites": writes}
	b.add(r)
}

// bigOrg is the large organization's control plane, filled and waiting to be measured.
type bigOrg struct {
	p          *plane
	sink       interface{ Close() error }
	small, big org
	base       memoryAt
	copied     time.Duration
	err        error
}

func (g *bigOrg) close() {
	if g.sink != nil {
		_ = g.sink.Close()
	}
	if g.p != nil {
		g.p.stop()
	}
}

// fillBigOrg starts a control plane with one organization of cfg.BigOrg Members and another
// of cfg.SmallOrg, for bigOrgPlane to measure. It fills it while memoryPlane measures the
// smaller figure: what is measured there is bytes, which a busy CPU does not change, and
// filling a hundred thousand members takes about as long.
func (b *bench) fillBigOrg(ctx context.Context) *bigOrg {
	g := &bigOrg{}
	b.logf("starting a fresh control plane for %s Members in one organization", thousands(b.cfg.BigOrg))
	if g.p, g.err = b.startPlane("bigorg"); g.err != nil {
		return g
	}
	sink, _, err := newSink()
	if err != nil {
		g.err = err
		return g
	}
	g.sink = sink
	mgr, err := g.p.startManager("manager", rig.ManagerOptions{})
	if err != nil {
		g.err = err
		return g
	}
	if g.small, err = g.p.newOrg(ctx, "small", sink, "", nil); err == nil {
		g.big, err = g.p.newOrg(ctx, "big", sink, "", nil)
	}
	if err == nil {
		err = g.p.waitReady(ctx, []org{g.small, g.big}, 2*time.Minute)
	}
	if err == nil {
		_, err = waitIdle([]*rig.Process{mgr}, b.cfg.Timeout)
	}
	if err != nil {
		g.err = err
		return g
	}
	g.base, _ = measure(mgr)
	if _, err := b.load(ctx, g.p, "small organization's members", b.cfg.SmallOrg, func(i int) client.Object { return member(g.small, "s", i) }); err != nil {
		g.err = err
		return g
	}
	g.copied, g.err = b.fill(ctx, g.p, mgr, "Member", "large organization's members", g.big, "b", b.cfg.BigOrg, func(prefix string, i int) client.Object {
		return member(g.big, prefix, i)
	})
	if g.err == nil {
		b.logf("bigorg: %s members copied in %s", thousands(b.cfg.BigOrg), secs(g.copied.Seconds()))
	}
	return g
}

// bigOrgPlane measures the manager started on the organizations fillBigOrg made (memory),
// and times admission in each (scale).
func (b *bench) bigOrgPlane(ctx context.Context, g *bigOrg) {
	mem := row{Section: "Memory", What: fmt.Sprintf("%s Members in one organization", thousands(b.cfg.BigOrg)), Goal: "< 500 MiB RSS (at 100,000), ~4 KiB/object"}
	scale := row{Section: "Admission scale", What: fmt.Sprintf("Invitation create, org of %s vs %s members (%d each, one at a time)",
		thousands(b.cfg.SmallOrg), thousands(b.cfg.BigOrg), b.cfg.AdmissionSamples), Goal: "no growth (p50 within 1.5x)"}
	report := func(err error) {
		if b.wants("scale") {
			b.add(failed(scale, err))
		}
		if b.wants("memory") {
			b.add(failed(mem, err))
		}
	}
	if g.err != nil {
		report(g.err)
		return
	}
	b.logf("bigorg: starting the manager on %s members", thousands(b.cfg.BigOrg))
	_, limited, writes, err := b.restartAndMeasure(ctx, g.p, nil, g.big, b.cfg.BigOrg, 500)
	if err != nil {
		report(err)
		return
	}
	if b.wants("memory") {
		objects := b.cfg.BigOrg + b.cfg.SmallOrg
		mem.Result = memoryResult(limited, objects, g.base, 500) + "; " + catchUp(writes, objects)
		mem.Met = memoryVerdict(limited, g.base, objects, 500, b.cfg.BigOrg >= 100000)
		mem.Values = map[string]any{"members": objects, "emptyManager": g.base,
			"containerMiB": 500, "underLimit": limited, "copySeconds": g.copied.Seconds(), "catchUpWrites": writes}
		b.add(mem)
	}
	if b.wants("scale") {
		b.add(b.admissionScale(ctx, g.p, scale, g.small, g.big))
	}
}

// admissionScale creates invitations one after another in the small and the large
// organization, alternating, and times each create: the API server's round trip with
// Roster's webhooks judging it.
func (b *bench) admissionScale(ctx context.Context, p *plane, r row, small, big org) row {
	n := b.cfg.AdmissionSamples
	var ts, tb []time.Duration
	for i := range n + 3 { // the first three of each warm up connections and caches
		for _, o := range []org{small, big} {
			inv := invitation(o, "adm", i)
			start := time.Now()
			if err := p.admin.Create(ctx, inv); err != nil {
				return failed(r, err)
			}
			took := time.Since(start)
			if i < 3 {
				continue
			}
			if o == small {
				ts = append(ts, took)
			} else {
				tb = append(tb, took)
			}
		}
	}
	ds, db := distOf(ts), distOf(tb)
	ratio := db.P50 / ds.P50
	r.Result = fmt.Sprintf("%s members: p50 %s, p95 %s; %s members: p50 %s, p95 %s (%.2fx)", thousands(b.cfg.SmallOrg), secs(ds.P50), secs(ds.P95),
		thousands(b.cfg.BigOrg), secs(db.P50), secs(db.P95), ratio)
	r.Met = verdict(ratio <= 1.5)
	r.Values = map[string]any{"small": ds, "big": db, "ratioP50": roundTo(ratio, 2)}
	return r
}

func nameIn(o org, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: o.ns}
}
