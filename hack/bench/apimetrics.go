package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/roster-dev/roster/internal/testenv/rig"
)

// tally is a count by name: the API server's write requests by resource, or CPU seconds by
// process.
type tally map[string]float64

var requestLine = regexp.MustCompile(`^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$`)
var labelPair = regexp.MustCompile(`(\w+)="([^"]*)"`)

// apiRequests reads the API server's own count of requests so far (apiserver_request_total):
// writes (create, update, patch, delete; dry runs left out) by resource and verb, and reads (get and
// list; watches left out) by resource.
func (p *plane) apiRequests(ctx context.Context) (writes, reads tally, err error) {
	cs, err := kubernetes.NewForConfig(p.rig.Config)
	if err != nil {
		return nil, nil, err
	}
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read the API server's metrics: %w", err)
	}
	writes, reads = tally{}, tally{}
	for _, l := range strings.Split(string(raw), "\n") {
		m := requestLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		labels := map[string]string{}
		for _, kv := range labelPair.FindAllStringSubmatch(m[1], -1) {
			labels[kv[1]] = kv[2]
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		key := labels["resource"]
		if labels["subresource"] != "" {
			key += "/" + labels["subresource"]
		}
		switch verb := labels["verb"]; {
		case labels["dry_run"] != "":
		case verb == "POST" || verb == "PUT" || verb == "PATCH" || verb == "DELETE":
			writes[key+" "+verb] += v
		case verb == "GET" || verb == "LIST":
			reads[verb+" "+key] += v
		}
	}
	return writes, reads, nil
}

// since is what was written between before and w.
func (w tally) since(before tally) tally {
	out := tally{}
	for k, v := range w {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func (w tally) total() float64 {
	t := 0.0
	for _, v := range w {
		t += v
	}
	return t
}

// per divides every count by n, for per-invitation figures.
func (w tally) per(n int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range w {
		out[k] = roundTo(v/float64(n), 2)
	}
	return out
}

// millisPer turns seconds into milliseconds per one of n.
func (w tally) millisPer(n int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range w {
		out[k] = roundTo(v*1000/float64(n), 1)
	}
	return out
}

func roundTo(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// String lists the counts, largest first: "members/status 2.0, invitations/status 3.1, ...".
func (w tally) String() string {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return w[keys[i]] > w[keys[j]] || (w[keys[i]] == w[keys[j]] && keys[i] < keys[j]) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.1f", k, w[k])
	}
	return strings.Join(parts, ", ")
}

// cpuProfiles starts CPU profiles of the API server and of the manager and returns what
// waits for them and keeps them in the working directory. The profiles run for 30 s or until
// the measurement ends.
func (b *bench) cpuProfiles(ctx context.Context, p *plane, run string, mgr *rig.Process) (wait func()) {
	hc, err := rest.HTTPClientFor(p.rig.Config)
	if err != nil {
		b.logf("profile: %v", err)
		return func() {}
	}
	const profile = "/debug/pprof/profile?seconds=30"
	var wg sync.WaitGroup
	wg.Go(func() {
		b.saveProfile(ctx, hc, strings.TrimSuffix(p.rig.Config.Host, "/")+profile, "cpu-"+run+"-kube-apiserver", "-top")
	})
	wg.Go(func() {
		b.saveProfile(ctx, http.DefaultClient, "http://"+p.pprof[mgr]+profile, "cpu-"+run+"-manager", "-top")
	})
	return wg.Wait
}

// saveProfile keeps the profile url answers in the working directory as name.pb.gz, and
// logs how to read it (go tool pprof with flag).
func (b *bench) saveProfile(ctx context.Context, c *http.Client, url, name, flag string) {
	path := filepath.Join(b.dir, name+".pb.gz")
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, resp.Body)
		return errors.Join(err, f.Close())
	}()
	if err != nil {
		b.logf("profile %s: %v", name, err)
		return
	}
	b.logf("profile: go tool pprof %s %s", flag, path)
}
