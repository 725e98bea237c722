package operator

import (
	"context"
	"fmt"
	"github.com/roster-dev/roster/internal/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"time"

	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/roster-dev/roster/controllers"
	"github.com/roster-dev/roster/internal/notify"
	webhookv1alpha1 "github.com/roster-dev/roster/internal/webhook/v1alpha1"
)

// The identities the manager and the portal have in the shipped install: their
// ServiceAccounts in roster-system (config/ and the chart's defaults). They are the manager's
// --trusted-user and --portal-user defaults; internal/install runs Roster as those
// ServiceAccounts and checks that they are what the install renders.
const (
	DefaultTrustedUser = "system:serviceaccount:roster-system:roster-manager"
	DefaultPortalUser  = "system:serviceaccount:roster-system:roster-portal"
)

// Options are what differs between the manager binary, the demo and the tests.
type Options struct {
	// Clock is the controllers' clock; tests step a fake one to expire invitations.
	Clock clock.Clock
	// Notifier delivers notifications.
	Notifier notify.Notifier
	// PortalURL is where links point when an Organization sets no spec.portalURL.
	PortalURL string
	// TrustedUsers are the manager's own identities, whose controllers' writes the webhooks
	// admit.
	TrustedUsers []string
	// PortalUsers are the portal's identities: they sign people up and change a person's
	// own name, email and phone on their behalf, and nothing else.
	PortalUsers []string
	// RetryBackoff is the wait before retrying a failed delivery; notify.Backoff when nil.
	// Tests shorten it.
	RetryBackoff func(attempt int) time.Duration
	// Webhooks registers the admission webhooks with the manager's webhook server.
	Webhooks bool
	// Shard is the part of the organizations this manager reconciles (their
	// org.roster.dev/shard label; "default" also takes unlabelled ones); empty for all.
	Shard string
}

// Setup registers Roster's indexes, controllers and webhooks with mgr.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	metrics.Register(mgr.GetCache())
	if err := controllers.SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return fmt.Errorf("indexes: %w", err)
	}
	c := mgr.GetClient()
	shard := controllers.Shard(opts.Shard)
	// A shard's Events name it, so an admin sees which manager acted.
	recorder := func(name string) events.EventRecorder {
		if opts.Shard != "" {
			name += "-" + opts.Shard
		}
		return mgr.GetEventRecorder(name)
	}
	notifications := controllers.Notifications{Notifier: opts.Notifier, APIReader: mgr.GetAPIReader(), RetryBackoff: opts.RetryBackoff,
		Retries: controllers.NewRetryGate()}
	reconcilers := []interface{ SetupWithManager(ctrl.Manager) error }{
		&controllers.OrganizationReconciler{Client: c, Shard: shard, Recorder: recorder("organization-controller"), Clock: opts.Clock,
			APIReader: mgr.GetAPIReader(), PortalURL: opts.PortalURL},
		&controllers.InvitationReconciler{Client: c, Shard: shard, Recorder: recorder("invitation-controller"), Clock: opts.Clock,
			Notifications: notifications, PortalURL: opts.PortalURL},
		&controllers.MemberReconciler{Client: c, Shard: shard, Recorder: recorder("member-controller"), Clock: opts.Clock, Notifications: notifications},
		&controllers.ExternalUserReconciler{Client: c, Shard: shard, Recorder: recorder("externaluser-controller"), Clock: opts.Clock,
			Notifications: notifications, PortalURL: opts.PortalURL},
		&controllers.CollaborationReconciler{Client: c, Shard: shard, Recorder: recorder("collaboration-controller"), Clock: opts.Clock,
			Notifications: notifications},
	}
	for _, r := range reconcilers {
		if err := r.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("controller %T: %w", r, err)
		}
	}
	if opts.Webhooks {
		if err := webhookv1alpha1.Setup(mgr, webhookv1alpha1.Options{TrustedUsers: opts.TrustedUsers, PortalUsers: opts.PortalUsers, Now: opts.Clock.Now}); err != nil {
			return fmt.Errorf("webhooks: %w", err)
		}
	}
	return nil
}

// MetricsOptions serves the metrics endpoint at addr over HTTPS, only to scrapers the API
// server authenticates and authorizes for get on /metrics (the roster-metrics-reader
// ClusterRole), since the metrics name organizations and applications.
func MetricsOptions(addr string) metricsserver.Options {
	return metricsserver.Options{BindAddress: addr, SecureServing: true, FilterProvider: filters.WithAuthenticationAndAuthorization}
}

// LeaderElectionID is the lease a manager's replicas elect their leader with: one per shard,
// so each shard has a leader of its own.
func LeaderElectionID(shard string) string {
	if shard == "" {
		return "roster.org.roster.dev"
	}
	return "roster-" + shard + ".org.roster.dev"
}
