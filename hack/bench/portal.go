package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/roster-dev/roster/internal/testenv/rig"
)

// portal runs the portal binary, as its own identity with config/portal's RBAC, and has
// cfg.PortalClients clients open invitation links for cfg.PortalFor: each opening is
// GET /invite/<token>, which looks the link up and answers with a cookie and a redirect, and
// GET /signup, the page with the form. The links are the throughput run's, still valid.
// Every client comes from 127.0.0.1, so the per-address and per-link rate limits (which
// would refuse all but the first few) are lifted: this measures serving the page.
func (b *bench) portal(ctx context.Context, p *plane, run string, mails *mailLog) row {
	clients, dur := b.cfg.PortalClients, b.cfg.PortalFor
	r := row{Section: "Portal", What: fmt.Sprintf("invitation page (GET /invite/<token> -> /signup), %d clients, %s, loopback", clients, dur),
		Goal: "p99 < 50 ms"}
	if run == "" {
		r.Result, r.Met = "not measured: it opens the throughput run's links, and throughput did not run", "not measured"
		return r
	}
	var links []string
	for i := range b.cfg.Invitations {
		if l := mails.linkTo(email(fmt.Sprintf("%s-%d", run, i))); l != "" {
			links = append(links, l)
		}
	}
	if len(links) == 0 {
		return failed(r, fmt.Errorf("no invitation links arrived"))
	}

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keyFile := filepath.Join(p.rig.Dir, "portal.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		return failed(r, err)
	}
	probe, err := rig.FreePort()
	if err != nil {
		return failed(r, err)
	}
	base := b.portalURL()
	proc := &rig.Process{
		Name: "portal",
		Bin:  b.bins["portal"],
		Args: []string{"--listen=127.0.0.1:" + strconv.Itoa(b.port), "--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probe),
			"--namespace=" + portalNS, "--key-file=" + keyFile, "--insecure-cookies", "--notify-allow-cidr=127.0.0.0/8",
			"--rate-per-ip=1000000000", "--rate-per-secret=1000000000"},
		Env:     []string{"KUBECONFIG=" + p.portalKubeconfig},
		LogPath: filepath.Join(p.rig.Dir, "portal.log"),
		Ready: func(ctx context.Context) error {
			if err := rig.Readyz(ctx, probe); err != nil {
				return err
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		},
	}
	p.procs = append(p.procs, proc)
	if err := proc.Start(); err != nil {
		return failed(r, err)
	}
	defer p.stopProcess(proc)

	transport := &http.Transport{MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: 2 * clients, IdleConnTimeout: time.Minute}
	defer transport.CloseIdleConnections()
	open := func(c *http.Client, link string) (time.Duration, error) {
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/signup" {
			return took, fmt.Errorf("%s ended at %s with %s", "GET /invite/<token>", resp.Request.URL.Path, resp.Status)
		}
		return took, nil
	}
	newClient := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Transport: transport, Jar: jar, Timeout: 30 * time.Second}
	}
	// Every link once, so the first timed requests do not pay for warming up.
	warm := newClient()
	for _, l := range links[:min(len(links), clients)] {
		if _, err := open(warm, l); err != nil {
			return failed(r, fmt.Errorf("warm-up: %w", err))
		}
	}

	b.logf("portal: %d clients for %s", clients, dur)
	cpu0 := b.cpu(p, "portal", []*rig.Process{proc})
	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     int
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	stopAt := start.Add(dur)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, link := newClient(), links[i%len(links)]
			var mine []time.Duration
			bad := 0
			var firstBad error
			for time.Now().Before(stopAt) && ctx.Err() == nil {
				took, err := open(c, link)
				if err != nil {
					bad++
					if firstBad == nil {
						firstBad = err
					}
					continue
				}
				mine = append(mine, took)
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			if firstErr == nil {
				firstErr = firstBad
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := b.cpu(p, "portal", []*rig.Process{proc}).since(cpu0)
	cores := tally{}
	for k, v := range cpu {
		cores[k] = roundTo(v/elapsed.Seconds(), 2)
	}
	d := distOf(lat)
	rps := float64(len(lat)) / elapsed.Seconds()
	r.Values = map[string]any{"opens": len(lat), "errors": errs, "seconds": elapsed.Seconds(), "opensPerSecond": rps,
		"requestsPerSecond": 2 * rps, "latency": d, "distinctLinks": min(len(links), clients),
		"cpuMillisecondsPerOpen": cpu.millisPer(max(len(lat), 1)), "cpuCores": cores}
	b.logf("portal: CPU milliseconds per open: %s", tally(cpu.millisPer(max(len(lat), 1))))
	r.Result = fmt.Sprintf("%.0f opens/s (%.0f requests/s), %s", rps, 2*rps, d)
	if errs > 0 {
		r.Result += fmt.Sprintf("; %d failed, e.g. %v", errs, firstErr)
	}
	r.Met = verdict(errs == 0 && d.P99 < 0.050)
	return r
}
