// Command manager runs Roster's controllers and admission webhooks; cmd/portal serves the
// pages invitation links open.
package main

import (
	"flag"
	"os"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/roster-dev/roster/internal/memlimit"
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
		portalUser     string
		workers        int
		passTimeout    time.Duration
		allow          notify.AllowList
		shard          string
		webhookHost    string
		webhookPort    int
		webhookCertDir string
		pprofAddr      string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443",
		"Address the metrics endpoint binds to, served over HTTPS to scrapers the API server says may get /metrics; 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health probes bind to.")
	flag.BoolVar(&leaderElection, "leader-elect", false, "Elect a leader so that only one replica reconciles at a time.")
	flag.BoolVar(&webhooks, "webhooks", true, "Serve the admission webhooks (needs a serving certificate in the webhook server's cert dir).")
	flag.StringVar(&portalURL, "portal-url", "", "Base address of the invitation pages, for organizations that set no spec.portalURL.")
	flag.StringVar(&trustedUser, "trusted-user", operator.DefaultTrustedUser,
		"The manager's own identity, whose controllers' writes the webhooks admit.")
	flag.StringVar(&portalUser, "portal-user", operator.DefaultPortalUser,
		"The portal's identity (cmd/portal): it signs people up and changes their own name, email and phone.")
	flag.IntVar(&workers, "workers", operator.DefaultWorkers, "How many objects of each kind are reconciled at once.")
	flag.DurationVar(&passTimeout, "reconcile-timeout", operator.DefaultPassTimeout, "The longest one reconcile pass may take, sends included.")
	flag.Var(&allow, "notify-allow-cidr", notify.AllowListUsage)
	flag.StringVar(&shard, "shard", "", "Reconcile only the Organizations labelled org.roster.dev/shard=NAME and their children, with a leader election of their own; "+
		"\"default\" also takes the unlabelled ones. Empty reconciles everything. A named shard started with --webhooks=false caches only its own organizations' children.")
	flag.StringVar(&webhookHost, "webhook-host", "", "Address the admission webhook server binds to; empty for all addresses.")
	flag.IntVar(&webhookPort, "webhook-port", webhook.DefaultPort, "Port the admission webhook server listens on.")
	flag.StringVar(&webhookCertDir, "webhook-cert-dir", "",
		"Directory holding the webhook server's tls.crt and tls.key; empty for controller-runtime's default.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "",
		"Address Go's pprof profiles are served on, for finding where time and memory go; keep it on loopback (127.0.0.1:6060), since a heap profile shows what the cache holds. Empty disables them.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	if limit := memlimit.FromCgroup(memlimit.CgroupFile); limit > 0 {
		log.Info("the Go runtime keeps under the container's memory limit", "bytes", limit)
	}

	newManager := operator.NewManager
	if operator.NarrowsCache(shard, webhooks) {
		// A named shard that serves no webhooks caches only its own organizations' children.
		newManager = func(cfg *rest.Config, opts ctrl.Options) (manager.Manager, error) {
			return operator.NewShardManager(cfg, opts, shard)
		}
	}
	mgr, err := newManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Metrics:                operator.MetricsOptions(metricsAddr),
		HealthProbeBindAddress: probeAddr,
		PprofBindAddress:       pprofAddr,
		LeaderElection:         leaderElection,
		LeaderElectionID:       operator.LeaderElectionID(shard),
		Controller:             config.Controller{MaxConcurrentReconciles: workers, ReconciliationTimeout: passTimeout},
		WebhookServer:          webhook.NewServer(webhook.Options{Host: webhookHost, Port: webhookPort, CertDir: webhookCertDir}),
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
		PortalUsers:  []string{portalUser},
		Webhooks:     webhooks,
		Shard:        shard,
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
