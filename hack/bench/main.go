// Command bench measures Roster against the API server it runs on (issue 12): throughput
// beside the API server's own floor, create-to-mail latency at a steady rate, the manager's
// memory with many objects cached, admission latency in a large organization, the portal's
// invitation page under load, the plugin's bulk import, and throughput with two shards.
//
// Everything runs as in production: a local kube-apiserver and etcd (hack/setup-envtest.sh),
// the manager, portal and kubectl-roster binaries built from cmd/ and run as processes of
// their own, and a loopback SMTP server that the manager really delivers to. `make bench`
// runs it; BENCH_QUICK=1 (or -quick) scales every size down so that it finishes in a few
// minutes. It prints a table and writes the figures as JSON to -out.
//
// It measures and reports; it asserts nothing about speed. A goal missed is a "miss" in the
// table, not a failure, and what cannot be measured here says why. It exits non-zero only
// when a measurement could not run at all.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/roster-dev/roster/internal/testenv/rig"
)

type config struct {
	Quick            bool          `json:"quick"`
	Phases           string        `json:"phases"`
	Invitations      int           `json:"invitations"`
	Orgs             int           `json:"orgs"`
	Creators         int           `json:"creators"`
	MailRate         int           `json:"mailRatePerOrg"`
	LatencyRate      int           `json:"latencyRate"`
	LatencyFor       time.Duration `json:"latencyDuration"`
	LatencyDrain     time.Duration `json:"latencyDrain"`
	Members          int           `json:"members"`
	Externals        int           `json:"externalUsers"`
	BigOrg           int           `json:"bigOrgMembers"`
	SmallOrg         int           `json:"smallOrgMembers"`
	AdmissionSamples int           `json:"admissionSamples"`
	PortalClients    int           `json:"portalClients"`
	PortalFor        time.Duration `json:"portalDuration"`
	ImportRows       int           `json:"importRows"`
	Timeout          time.Duration `json:"phaseTimeout"`
	out              string
	keep             bool
	profile          bool
}

// full and quick are the sizes: the issue's, and a run of a few minutes on a small machine.
var (
	full = config{Invitations: 2000, Orgs: 4, Creators: 16, MailRate: 1000, LatencyRate: 50, LatencyFor: 60 * time.Second,
		LatencyDrain: 20 * time.Second, Members: 10000, Externals: 10000, BigOrg: 100000, SmallOrg: 100, AdmissionSamples: 50, PortalClients: 100,
		PortalFor: 15 * time.Second, ImportRows: 10000, Timeout: 30 * time.Minute}
	quick = config{Invitations: 200, Orgs: 4, Creators: 16, MailRate: 1000, LatencyRate: 50, LatencyFor: 10 * time.Second,
		LatencyDrain: 15 * time.Second, Members: 500, Externals: 500, BigOrg: 1000, SmallOrg: 100, AdmissionSamples: 20, PortalClients: 100,
		PortalFor: 10 * time.Second, ImportRows: 1000, Timeout: 5 * time.Minute}
)

var allPhases = []string{"floor", "throughput", "shards", "latency", "portal", "import", "memory", "scale"}

func main() {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	q := fs.Bool("quick", os.Getenv("BENCH_QUICK") != "" && os.Getenv("BENCH_QUICK") != "0", "scale every size down (also BENCH_QUICK=1)")
	var o config
	fs.StringVar(&o.Phases, "phases", strings.Join(allPhases, ","), "the measurements to run, of "+strings.Join(allPhases, ","))
	fs.IntVar(&o.Invitations, "invitations", 0, "invitations created at once for throughput and shards (full 2000, quick 200)")
	fs.IntVar(&o.Orgs, "orgs", 0, "organizations the invitations are spread over, even for the two shards (4)")
	fs.IntVar(&o.Creators, "creators", 0, "concurrent creates by the benchmark's client and by the floor's (16)")
	fs.IntVar(&o.MailRate, "mail-rate", 0, "each organization's spec.notifications.email.maxPerSecond (1000, the most allowed; Roster's default is 10)")
	fs.IntVar(&o.LatencyRate, "latency-rate", 0, "invitations per second for the latency measurement (50)")
	fs.DurationVar(&o.LatencyFor, "latency-duration", 0, "how long invitations are created at that rate (full 60s, quick 10s)")
	fs.DurationVar(&o.LatencyDrain, "latency-drain", 0, "how long after the last create mails may still arrive (full 20s, quick 15s); later ones count as later than that")
	fs.IntVar(&o.Members, "members", 0, "Members cached for the first memory figure (full 10000, quick 500)")
	fs.IntVar(&o.Externals, "externals", 0, "ExternalUsers cached beside them (full 10000, quick 500)")
	fs.IntVar(&o.BigOrg, "big-org", 0, "Members of the one large organization (full 100000, quick 1000)")
	fs.IntVar(&o.SmallOrg, "small-org", 0, "Members of the small organization admission is compared with (100)")
	fs.IntVar(&o.AdmissionSamples, "admission-samples", 0, "invitations created one after another in each to time admission (full 50, quick 20)")
	fs.IntVar(&o.PortalClients, "portal-clients", 0, "concurrent clients opening invitation pages (100)")
	fs.DurationVar(&o.PortalFor, "portal-duration", 0, "how long they do (full 15s, quick 10s)")
	fs.IntVar(&o.ImportRows, "import-rows", 0, "rows of the CSV file the plugin imports (full 10000, quick 1000)")
	fs.DurationVar(&o.Timeout, "timeout", 0, "the longest one measurement may wait for Roster (full 30m, quick 5m)")
	fs.StringVar(&o.out, "out", envOr("BENCH_OUT", filepath.Join(rig.Root(), "bin", "bench")), "directory for results-<time>.json (also BENCH_OUT)")
	fs.BoolVar(&o.keep, "keep", false, "keep the working directory with the processes' logs")
	fs.BoolVar(&o.profile, "profile", false, "keep CPU profiles of the API server and the manager during the one-manager throughput run (implies -keep)")
	_ = fs.Parse(os.Args[1:])

	cfg := full
	if *q {
		cfg = quick
	}
	cfg.Quick = *q
	cfg.Phases, cfg.out, cfg.keep, cfg.profile = o.Phases, o.out, o.keep || o.profile, o.profile
	override(&cfg.Invitations, o.Invitations)
	override(&cfg.Orgs, o.Orgs)
	override(&cfg.Creators, o.Creators)
	override(&cfg.MailRate, o.MailRate)
	override(&cfg.LatencyRate, o.LatencyRate)
	override(&cfg.LatencyFor, o.LatencyFor)
	override(&cfg.LatencyDrain, o.LatencyDrain)
	override(&cfg.Members, o.Members)
	override(&cfg.Externals, o.Externals)
	override(&cfg.BigOrg, o.BigOrg)
	override(&cfg.SmallOrg, o.SmallOrg)
	override(&cfg.AdmissionSamples, o.AdmissionSamples)
	override(&cfg.PortalClients, o.PortalClients)
	override(&cfg.PortalFor, o.PortalFor)
	override(&cfg.ImportRows, o.ImportRows)
	override(&cfg.Timeout, o.Timeout)
	if cfg.Orgs < 2 || cfg.Orgs%2 != 0 {
		fmt.Fprintln(os.Stderr, "bench: -orgs must be even and at least 2, so the two shards get the same share")
		os.Exit(2)
	}

	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "bench: KUBEBUILDER_ASSETS is not set; run `make bench`, or set it to $(hack/setup-envtest.sh)")
		os.Exit(2)
	}
	// envtest and the clients log nothing the table needs.
	logf.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := newBench(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	failed := b.run(ctx)
	b.close()
	if failed {
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func override[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// row is one line of the table: a measurement, its result, the goal and whether it was met.
type row struct {
	Section string `json:"section"`
	What    string `json:"what"`
	Result  string `json:"result"`
	Goal    string `json:"goal,omitempty"`
	// Met is "pass", "miss", "" (no goal), "not measured" or "failed".
	Met    string         `json:"met"`
	Values map[string]any `json:"values,omitempty"`
}

func verdict(ok bool) string {
	if ok {
		return "pass"
	}
	return "miss"
}

type bench struct {
	cfg     config
	dir     string
	bins    map[string]string
	port    int // the portal's, chosen up front: links point there
	started time.Time
	rows    []row
}

func newBench(cfg config) (*bench, error) {
	dir, err := os.MkdirTemp("", "roster-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, dir: dir, bins: map[string]string{}, started: time.Now()}
	if b.port, err = rig.FreePort(); err != nil {
		return nil, err
	}
	b.logf("working directory (logs): %s", dir)
	names := []string{"manager", "portal", "kubectl-roster"}
	b.logf("building cmd/%s", strings.Join(names, ", cmd/"))
	bins, err := rig.Build(dir, names...)
	if err != nil {
		return nil, err
	}
	for i, n := range names {
		b.bins[n] = bins[i]
	}
	return b, nil
}

func (b *bench) close() {
	if b.cfg.keep {
		b.logf("kept %s", b.dir)
		return
	}
	_ = os.RemoveAll(b.dir)
}

func (b *bench) portalURL() string { return fmt.Sprintf("http://127.0.0.1:%d", b.port) }

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%6.1fs  %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) wants(phase string) bool {
	for _, p := range strings.Split(b.cfg.Phases, ",") {
		if strings.TrimSpace(p) == phase {
			return true
		}
	}
	return false
}

func (b *bench) add(rows ...row) {
	b.rows = append(b.rows, rows...)
	for _, r := range rows {
		b.logf("%s: %s: %s", r.Section, r.What, r.Result)
	}
}

// fail records a measurement that could not run.
func (b *bench) fail(section string, err error) {
	b.add(row{Section: section, What: "-", Result: "failed: " + oneLine(err.Error()), Met: "failed"})
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// run runs the chosen measurements on three control planes: one for everything about
// invitations (the floor and throughput must share theirs), and a fresh one for each memory
// figure, so that what earlier measurements left behind is not counted as cached. The large
// organization's plane is filled while the other memory figure is measured.
func (b *bench) run(ctx context.Context) (failed bool) {
	if b.wants("floor") || b.wants("throughput") || b.wants("shards") || b.wants("latency") || b.wants("portal") || b.wants("import") {
		b.invitationsPlane(ctx)
	}
	if (b.wants("memory") || b.wants("scale")) && ctx.Err() == nil {
		filled := make(chan *bigOrg, 1)
		go func() { filled <- b.fillBigOrg(ctx) }()
		if b.wants("memory") {
			b.memoryPlane(ctx)
		}
		g := <-filled
		b.bigOrgPlane(ctx, g)
		g.close()
	}
	b.printTable(os.Stdout)
	if err := b.writeJSON(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: write results:", err)
		failed = true
	}
	for _, r := range b.rows {
		if r.Met == "failed" {
			failed = true
		}
	}
	return failed
}

func (b *bench) printTable(w *os.File) {
	mode := "full"
	if b.cfg.Quick {
		mode = "quick (BENCH_QUICK=1: sizes scaled down)"
	}
	fmt.Fprintf(w, "\nRoster benchmark, %s, %s: %d CPUs, %s/%s, %s; %s mode\n\n", time.Now().Format("2006-01-02 15:04"),
		hostname(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, loadavg(), mode)
	widths := []int{len("Measurement"), len("What"), len("Result"), len("Goal"), len("Met")}
	cells := make([][]string, len(b.rows))
	for i, r := range b.rows {
		cells[i] = []string{r.Section, r.What, r.Result, r.Goal, r.Met}
		for j, c := range cells[i] {
			widths[j] = max(widths[j], len(c))
		}
	}
	line := func(c []string) {
		var parts []string
		for j, s := range c {
			parts = append(parts, s+strings.Repeat(" ", widths[j]-len(s)))
		}
		fmt.Fprintln(w, "| "+strings.Join(parts, " | ")+" |")
	}
	line([]string{"Measurement", "What", "Result", "Goal", "Met"})
	var sep []string
	for _, wd := range widths {
		sep = append(sep, strings.Repeat("-", wd))
	}
	fmt.Fprintln(w, "|-"+strings.Join(sep, "-|-")+"-|")
	for _, c := range cells {
		line(c)
	}
	fmt.Fprintln(w)
}

func (b *bench) writeJSON() error {
	if err := os.MkdirAll(b.cfg.out, 0o755); err != nil {
		return err
	}
	path := filepath.Join(b.cfg.out, "results-"+b.started.Format("20060102-150405")+".json")
	data, err := json.MarshalIndent(map[string]any{
		"started": b.started.Format(time.RFC3339),
		"seconds": time.Since(b.started).Seconds(),
		"machine": map[string]any{"hostname": hostname(), "cpus": runtime.NumCPU(), "os": runtime.GOOS, "arch": runtime.GOARCH,
			"go": runtime.Version(), "loadavg": loadavg()},
		"config": b.cfg.forJSON(),
		"rows":   b.rows,
	}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("results: %s\n", path)
	return nil
}

// forJSON is the configuration with durations as text ("1m0s") rather than nanoseconds.
func (c config) forJSON() map[string]any {
	data, _ := json.Marshal(c)
	out := map[string]any{}
	_ = json.Unmarshal(data, &out)
	for k, d := range map[string]time.Duration{"latencyDuration": c.LatencyFor, "latencyDrain": c.LatencyDrain, "portalDuration": c.PortalFor, "phaseTimeout": c.Timeout} {
		out[k] = d.String()
	}
	return out
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "load unknown"
	}
	return "load " + strings.Join(f[:3], " ")
}

// inParallel calls do(i) for every i in [0, n) from cfg.Creators workers, handing the indexes
// out in order, until all are done or ctx ends. It returns how many calls failed and the
// first error; with stopOnError no index is handed out after a call failed.
func (b *bench) inParallel(ctx context.Context, n int, stopOnError bool, do func(i int) error) (failed int64, first error) {
	var next, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range b.cfg.Creators {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil || (stopOnError && failures.Load() > 0) {
					return
				}
				if err := do(i); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	first, _ = firstErr.Load().(error)
	return failures.Load(), first
}
