// Command portal serves the pages Roster's invitation links open: sign-up, codes, the
// public link and door number, the external portal and the profile page. It runs apart
// from the manager, under its own ServiceAccount with only the rights the pages need,
// because it faces the internet.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/roster-dev/roster/controllers"
	"github.com/roster-dev/roster/internal/memlimit"
	"github.com/roster-dev/roster/internal/netrange"
	"github.com/roster-dev/roster/internal/notify"
	"github.com/roster-dev/roster/internal/operator"
	"github.com/roster-dev/roster/internal/portal"
)

func main() {
	var (
		addr, probeAddr, namespace, keyFile, certFile, keyPEM string
		insecure                                              bool
		perIP, perSecret                                      int
	)
	flag.StringVar(&addr, "listen", ":8443", "Address the pages are served on.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health probes bind to.")
	flag.StringVar(&namespace, "namespace", os.Getenv("POD_NAMESPACE"), "The portal's own namespace, where it keeps credentials and codes.")
	flag.StringVar(&keyFile, "key-file", "/etc/roster-portal/key", "File with the portal's key: at least 32 random bytes, or their base64.")
	flag.StringVar(&certFile, "tls-cert-file", "", "TLS certificate; without it the pages are served over plain HTTP (behind a TLS-terminating ingress, say).")
	flag.StringVar(&keyPEM, "tls-key-file", "", "TLS private key for --tls-cert-file.")
	flag.BoolVar(&insecure, "insecure-cookies", false, "Send cookies over plain HTTP too; only for a portal reached without TLS on a development machine.")
	flag.IntVar(&perIP, "rate-per-ip", portal.DefaultLimits().PerIP, "Guarded requests one client address may make a minute, per replica.")
	flag.IntVar(&perSecret, "rate-per-secret", portal.DefaultLimits().PerSecret, "Requests a minute that may name one link, login or code, per replica.")
	zapOpts := zap.Options{}
	var allow notify.AllowList
	flag.Var(&allow, "notify-allow-cidr", notify.AllowListUsage)
	var proxies netrange.List
	flag.Var(&proxies, "trusted-proxy-cidr", "Address ranges of the ingress or load balancer in front of the portal, whose X-Forwarded-For "+
		"header the rate limits believe; repeat or separate with commas. None by default: every client is its peer address.")
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("portal")
	if limit := memlimit.FromCgroup(memlimit.CgroupFile); limit > 0 {
		log.Info("the Go runtime keeps under the container's memory limit", "bytes", limit)
	}

	if err := run(ctrl.SetupSignalHandler(), options{addr: addr, probeAddr: probeAddr, namespace: namespace, keyFile: keyFile,
		certFile: certFile, keyPEM: keyPEM, secure: !insecure, limits: portal.Limits{PerIP: perIP, PerSecret: perSecret}, allow: allow, proxies: proxies}); err != nil {
		log.Error(err, "the portal stopped")
		os.Exit(1)
	}
}

type options struct {
	addr, probeAddr, namespace, keyFile, certFile, keyPEM string
	secure                                                bool
	limits                                                portal.Limits
	// allow are the internal ranges code messages may reach.
	allow notify.AllowList
	// proxies are the ingress addresses whose X-Forwarded-For the rate limits believe.
	proxies netrange.List
}

func run(ctx context.Context, o options) error {
	key, err := readKey(o.keyFile)
	if err != nil {
		return err
	}
	// A manager with no controllers: it gives the cache (Roster's Secrets only, with the
	// field indexes the membership rules look people up by), health probes and a clean
	// shutdown.
	mgr, err := operator.NewPortalManager(ctrl.GetConfigOrDie(), manager.Options{
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: o.probeAddr,
	})
	if err != nil {
		return err
	}
	if err := controllers.SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	srv, err := portal.New(portal.Config{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Notifier:       notify.NewDispatcher(notify.DispatcherOptions{Logger: ctrl.Log.WithName("notify"), Allow: o.allow}),
		Namespace:      o.namespace,
		Key:            key,
		Secure:         o.secure,
		Limits:         o.limits,
		TrustedProxies: o.proxies,
		Log:            ctrl.Log.WithName("portal"),
	})
	if err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", func(r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the cache has not synced yet")
		}
		return nil
	}); err != nil {
		return err
	}
	hs := &http.Server{Addr: o.addr, Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the cache did not sync")
		}
		go srv.Sweep(ctx, 10*time.Minute)
		errc := make(chan error, 1)
		go func() {
			if o.certFile != "" {
				errc <- hs.ListenAndServeTLS(o.certFile, o.keyPEM)
			} else {
				errc <- hs.ListenAndServe()
			}
		}()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return hs.Shutdown(sctx)
		}
	})); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// readKey reads the key file: raw bytes, or base64 of them.
func readKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the portal key: %w", err)
	}
	if d, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b))); err == nil && len(d) >= 32 {
		return d, nil
	}
	if len(b) < 32 {
		return nil, errors.New("the portal key must have at least 32 bytes")
	}
	return b, nil
}
