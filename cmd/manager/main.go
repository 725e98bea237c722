// Command manager runs Roster's controllers, admission webhooks and invitation pages.
package main

import (
	"flag"
	"net/netip"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/roster-dev/roster/internal/notify"
	"github.com/roster-dev/roster/internal/operator"
)

func main() {
	var (
		metricsAddr    string
		probeAddr      string
		leaderElection bool
		webhooks       bool
		portalURL      string
		trustedUser    string
		workers        int
		passTimeout    time.Duration
		allow          []netip.Prefix
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443",
		"Address the metrics endpoint binds to, served over HTTPS to scrapers the API server says may get /metrics; 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health probes bind to.")
	flag.BoolVar(&leaderElection, "leader-elect", false, "Elect a leader so that only one replica reconciles at a time.")
	flag.BoolVar(&webhooks, "webhooks", true, "Serve the admission webhooks (needs a serving certificate in the webhook server's cert dir).")
	flag.StringVar(&portalURL, "portal-url", "", "Base address of the invitation pages, for organizations that set no spec.portalURL.")
	flag.StringVar(&trustedUser, "trusted-user", "system:serviceaccount:roster-system:roster-manager",
		"The manager's own identity; the sign-up pages change a person's details as it.")
	flag.IntVar(&workers, "workers", operator.DefaultWorkers, "How many objects of each kind are reconciled at once.")
	flag.DurationVar(&passTimeout, "reconcile-timeout", operator.DefaultPassTimeout, "The longest one reconcile pass may take, sends included.")
	flag.Func("notify-allow-cidr", "An address range notification channels may reach although it is internal "+
		"(loopback, link-local, private), such as a mail relay on the office network; repeat or separate with commas. None by default.",
		func(v string) error {
			for _, part := range strings.Split(v, ",") {
				p, err := netip.ParsePrefix(strings.TrimSpace(part))
				if err != nil {
					return err
				}
				allow = append(allow, p)
			}
			return nil
		})
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	mgr, err := operator.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Metrics:                operator.MetricsOptions(metricsAddr),
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElection,
		LeaderElectionID:       "roster.org.roster.dev",
		Controller:             config.Controller{MaxConcurrentReconciles: workers, ReconciliationTimeout: passTimeout},
	})
	if err != nil {
		log.Error(err, "unable to create the manager")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	if err := operator.Setup(ctx, mgr, operator.Options{
		Notifier:     notify.NewDispatcher(notify.DispatcherOptions{Logger: ctrl.Log.WithName("notify"), Allow: allow}),
		PortalURL:    portalURL,
		TrustedUsers: []string{trustedUser},
		Webhooks:     webhooks,
	}); err != nil {
		log.Error(err, "unable to set up the controllers")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the health check")
		os.Exit(1)
	}
	ready := healthz.Ping
	if webhooks {
		ready = mgr.GetWebhookServer().StartedChecker()
	}
	if err := mgr.AddReadyzCheck("readyz", ready); err != nil {
		log.Error(err, "unable to set up the ready check")
		os.Exit(1)
	}
	log.Info("starting the manager")
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "the manager stopped with an error")
		os.Exit(1)
	}
}
