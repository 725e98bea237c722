package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/notify/mailsink"
	"github.com/roster-dev/roster/internal/operator"
	"github.com/roster-dev/roster/internal/testenv/rig"
)

const (
	// managerUser is the manager's name in production, its ServiceAccount's: the webhook
	// configurations leave that name's own writes out (matchConditions), and the benchmark
	// measures what ships.
	managerUser = operator.DefaultTrustedUser
	portalUser  = "roster-portal"
	portalNS    = "roster-system"
	adminUser   = "alice@acme.example"
	// runLabel marks what one measurement created, so it can find (and watch) just that.
	runLabel = "bench.roster.dev/run"
	// idleShard is a shard no organization is in: a manager started with --shard=idleShard
	// serves the webhooks and reconciles nothing.
	idleShard = "bench-none"
)

// plane is one local control plane and what the benchmark runs on it.
type plane struct {
	b     *bench
	rig   *rig.Rig
	admin client.WithWatch // alice, a Super Admin of every organization the benchmark makes
	// asManager writes as Roster's manager does, for the floor.
	asManager                                        client.Client
	mgrKubeconfig, portalKubeconfig, adminKubeconfig string
	procs                                            []*rig.Process
	starts                                           int
	apiserverPid, etcdPid                            int
	// pprof is where each manager serves Go's profiles, on loopback.
	pprof map[*rig.Process]string
}

func (b *bench) startPlane(name string) (*plane, error) {
	dir := filepath.Join(b.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r, err := rig.Start(dir)
	if err != nil {
		return nil, err
	}
	p := &plane{b: b, rig: r, pprof: map[*rig.Process]string{}}
	if err := p.setup(); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func (p *plane) setup() error {
	ctx := context.Background()
	cfg := rest.CopyConfig(p.rig.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: adminUser, Groups: []string{"system:masters"}}
	var err error
	if p.admin, err = client.NewWithWatch(cfg, client.Options{Scheme: rig.Scheme()}); err != nil {
		return err
	}
	if _, p.adminKubeconfig, err = p.rig.AddUser(adminUser, "system:masters"); err != nil {
		return err
	}
	// The manager runs with exactly the generated ClusterRole, as its ServiceAccount does.
	if err := p.rig.GrantManagerRole(ctx, managerUser); err != nil {
		return err
	}
	mcfg, mk, err := p.rig.AddUser(managerUser)
	if err != nil {
		return err
	}
	p.mgrKubeconfig = mk
	if p.asManager, err = client.New(mcfg, client.Options{Scheme: rig.Scheme()}); err != nil {
		return err
	}
	if err := p.rig.Admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: portalNS}}); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	if err := rig.GrantPortalRoles(ctx, p.rig.Admin, portalUser); err != nil {
		return err
	}
	_, p.portalKubeconfig, err = p.rig.AddUser(portalUser)
	return err
}

// stop ends every process started on the plane and the control plane.
func (p *plane) stop() {
	for _, proc := range p.procs {
		proc.Kill()
	}
	p.procs = nil
	if err := p.rig.Stop(); err != nil {
		p.b.logf("stop the control plane: %v", err)
	}
}

// startManager starts the manager binary as a process of its own, as in production: with
// the generated ClusterRole, leader election off (one replica), and GODEBUG=gctrace=1 so its
// log tells the live heap after each garbage collection.
func (p *plane) startManager(name string, o rig.ManagerOptions, env ...string) (*rig.Process, error) {
	probe, err := rig.FreePort()
	if err != nil {
		return nil, err
	}
	p.starts++
	o.TrustedUser, o.PortalUser, o.PortalURL = managerUser, portalUser, p.b.portalURL()
	// Every manager serves its profiles, for the heap after a restart and the CPU under -profile.
	pprofPort, err := rig.FreePort()
	if err != nil {
		return nil, err
	}
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", pprofPort)
	o.Extra = append(o.Extra, "--pprof-bind-address="+pprofAddr)
	proc := &rig.Process{
		Name:    name,
		Bin:     p.b.bins["manager"],
		Args:    p.rig.ManagerArgs(o, probe),
		Env:     append([]string{"KUBECONFIG=" + p.mgrKubeconfig, "GODEBUG=gctrace=1"}, env...),
		LogPath: filepath.Join(p.rig.Dir, fmt.Sprintf("%02d-%s.log", p.starts, name)),
		Ready: func(ctx context.Context) error {
			if err := rig.Readyz(ctx, probe); err != nil {
				return err
			}
			if o.NoWebhooks {
				return nil
			}
			return p.dryRunOrganization(ctx)
		},
	}
	p.procs = append(p.procs, proc)
	if err := proc.Start(); err != nil {
		return nil, err
	}
	p.pprof[proc] = pprofAddr
	return proc, nil
}

// stopProcess ends proc as a pod's deletion does.
func (p *plane) stopProcess(proc *rig.Process) {
	proc.Stop(10 * time.Second)
	for i, q := range p.procs {
		if q == proc {
			p.procs = append(p.procs[:i], p.procs[i+1:]...)
			break
		}
	}
}

// dryRunOrganization is admitted once the API server reaches the webhooks.
func (p *plane) dryRunOrganization(ctx context.Context) error {
	return p.admin.Create(ctx, &rosterv1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: "warmup", Namespace: "default"},
		Spec:       rosterv1.OrganizationSpec{DisplayName: "warmup", Admins: []rosterv1.Subject{{Kind: "User", Name: adminUser}}},
	}, client.DryRunAll)
}

// org is an organization the benchmark made, in a namespace of its own.
type org struct {
	ns, name string
}

// orgSpec is the organization every measurement uses: alice its Super Admin, the Paid plan
// (the Free plan's daily import quota would stop a benchmark), and email through sink at
// the benchmark's mail rate.
func (p *plane) newOrg(ctx context.Context, prefix string, sink *mailsink.Server, shard string, mutate func(*rosterv1.Organization)) (org, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := p.rig.Admin.Create(ctx, ns); err != nil {
		return org{}, err
	}
	if err := p.rig.Admin.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "smtp", Namespace: ns.Name, Labels: map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster}},
		StringData: map[string]string{"host": sink.Host(), "port": strconv.Itoa(sink.Port()), "tls": "none"},
	}); err != nil {
		return org{}, err
	}
	rate := int32(p.b.cfg.MailRate)
	o := &rosterv1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns.Name},
		Spec: rosterv1.OrganizationSpec{
			DisplayName: "Acme " + ns.Name,
			Admins:      []rosterv1.Subject{{Kind: "User", Name: adminUser}},
			Plan:        rosterv1.PlanPaid,
			PortalURL:   p.b.portalURL(),
			Notifications: rosterv1.Notifications{
				Email: &rosterv1.EmailNotifications{SMTPSecretRef: rosterv1.LocalObjectReference{Name: "smtp"},
					From: "Acme <people@acme.example>", MaxPerSecond: &rate},
			},
		},
	}
	if shard != "" {
		o.Labels = map[string]string{rosterv1.LabelShard: shard}
	}
	if mutate != nil {
		mutate(o)
	}
	if err := rig.CreateRetrying(ctx, p.admin, o); err != nil {
		return org{}, err
	}
	return org{ns: ns.Name, name: o.Name}, nil
}

// waitReady waits until the organizations are Ready, which a manager reconciling them says.
func (p *plane) waitReady(ctx context.Context, orgs []org, within time.Duration) error {
	deadline := time.Now().Add(within)
	for _, o := range orgs {
		for {
			obj := &rosterv1.Organization{}
			err := p.admin.Get(ctx, client.ObjectKey{Namespace: o.ns, Name: o.name}, obj)
			if err == nil && meta.IsStatusConditionTrue(obj.Status.Conditions, rosterv1.ConditionReady) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("organization %s/%s not Ready after %s: %v %v", o.ns, o.name, within, err, obj.Status.Conditions)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// invitation is the invitation every measurement sends: by email, with the work details an
// import carries.
func invitation(o org, run string, i int) *rosterv1.Invitation {
	name := fmt.Sprintf("%s-%d", run, i)
	return &rosterv1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.ns, Labels: map[string]string{runLabel: run}},
		Spec: rosterv1.InvitationSpec{
			OrganizationRef: rosterv1.OrganizationReference{Name: o.name},
			Method:          rosterv1.InvitationMethodEmail,
			Invitee:         rosterv1.Invitee{Name: "Person " + strconv.Itoa(i), Email: email(name)},
			WorkDetails:     rosterv1.WorkDetails{Department: "Engineering", Position: "Site Reliability Engineer", Location: "Berlin"},
		},
	}
}

func email(name string) string { return name + "@mail.example" }

// mailLog notes when the first mail to each recipient arrived, and the first link it
// carried.
type mailLog struct {
	mu    sync.Mutex
	first map[string]time.Time
	link  map[string]string
	count map[string]int
	total int
}

func newMailLog() *mailLog {
	return &mailLog{first: map[string]time.Time{}, link: map[string]string{}, count: map[string]int{}}
}

func (l *mailLog) record(m mailsink.Mail) {
	now := time.Now()
	var link string
	if links := m.Links(); len(links) > 0 {
		link = links[0]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	for _, to := range m.To {
		to = strings.ToLower(to)
		if _, ok := l.first[to]; !ok {
			l.first[to] = now
			l.link[to] = link
		}
		l.count[to]++
	}
}

// arrived returns when the first mail to each of addrs arrived (zero when none has), and how
// many have.
func (l *mailLog) arrived(addrs []string) ([]time.Time, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]time.Time, len(addrs))
	n := 0
	for i, a := range addrs {
		if t, ok := l.first[strings.ToLower(a)]; ok {
			out[i] = t
			n++
		}
	}
	return out, n
}

func (l *mailLog) linkTo(addr string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.link[strings.ToLower(addr)]
}

// duplicates counts the mails beyond the first to each of addrs.
func (l *mailLog) duplicates(addrs []string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := 0
	for _, a := range addrs {
		if c := l.count[strings.ToLower(a)]; c > 1 {
			d += c - 1
		}
	}
	return d
}

// newSink starts a loopback SMTP server that notes arrivals in a new mailLog.
func newSink() (*mailsink.Server, *mailLog, error) {
	l := newMailLog()
	s, err := mailsink.Start(mailsink.Options{OnMail: l.record})
	return s, l, err
}

// gcLine is one line of GODEBUG=gctrace=1: "gc 12 @3.4s 2%: ... ms cpu, 40->41->20 MB, 42 MB goal, ...".
var gcLine = regexp.MustCompile(`(?m)^gc \d+ @[0-9.]+s \d+%: .*? (\d+)->(\d+)->(\d+) MB, (\d+) MB goal`)

// liveHeap reads a manager log for the heap live after its last garbage collection and the
// largest live heap any collection found, in MiB; ok is false when the log has none.
func liveHeap(logPath string) (last, peak int, ok bool) {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return 0, 0, false
	}
	for _, m := range gcLine.FindAllStringSubmatch(string(data), -1) {
		live, _ := strconv.Atoi(m[3])
		last, ok = live, true
		peak = max(peak, live)
	}
	return last, peak, ok
}
