// Package operator assembles Roster's manager: the scheme, the cache rules and the
// controllers and webhooks it runs. The manager binary, `make demo` and the envtest suites
// all build their manager here, so what is tested is what ships.
package operator

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// NewScheme returns a scheme with the Kubernetes kinds and Roster's.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(rosterv1.AddToScheme(s))
	return s
}

// CacheOptions strips managedFields from everything cached (they are large and Roster never
// reads them) and limits the Secret cache to Secrets labelled as Roster's, so the manager
// never holds the cluster's other credentials in memory.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{rosterv1.LabelPartOf: rosterv1.PartOfRoster})},
		},
	}
}

// NewManager builds a manager with Roster's scheme and cache rules; opts fills in the rest
// (metrics, health probes, leader election, webhook server).
func NewManager(cfg *rest.Config, opts manager.Options) (manager.Manager, error) {
	return newManager(cfg, opts, CacheOptions())
}

// NewShardManager builds the manager of one named shard that serves no webhooks: its cache
// holds only its own organizations' invitations, members, external users and
// collaborations, so that shards divide the memory as well as the work. Organizations stay
// cached whole (they are few, and a shard reads one to follow it when it moves), and so do
// Secrets, Claims and ledgers. A manager that serves the webhooks, or the default shard,
// which takes the objects not yet labelled, needs NewManager: the webhooks look people up
// in every organization.
func NewShardManager(cfg *rest.Config, opts manager.Options, shard string) (manager.Manager, error) {
	return newManager(cfg, opts, ShardCacheOptions(shard))
}

// ShardCacheOptions are CacheOptions narrowed to one shard's children.
func ShardCacheOptions(shard string) cache.Options {
	opts := CacheOptions()
	only := labels.SelectorFromSet(labels.Set{rosterv1.LabelShard: shard})
	for _, obj := range []client.Object{&rosterv1.Invitation{}, &rosterv1.Member{}, &rosterv1.ExternalUser{}, &rosterv1.Collaboration{}} {
		opts.ByObject[obj] = cache.ByObject{Label: only}
	}
	return opts
}

// NarrowsCache reports whether a manager for shard that serves webhooks or not can cache
// only that shard's children (NewShardManager).
func NarrowsCache(shard string, webhooks bool) bool {
	return shard != "" && shard != rosterv1.DefaultShard && !webhooks
}

func newManager(cfg *rest.Config, opts manager.Options, cacheOpts cache.Options) (manager.Manager, error) {
	opts.Scheme = NewScheme()
	opts.Cache = cacheOpts
	if opts.Controller.MaxConcurrentReconciles == 0 {
		opts.Controller.MaxConcurrentReconciles = DefaultWorkers
	}
	if opts.Controller.ReconciliationTimeout == 0 {
		opts.Controller.ReconciliationTimeout = DefaultPassTimeout
	}
	return manager.New(cfg, opts)
}

// Defaults for the controllers' workers.
const (
	// DefaultWorkers is how many objects of one kind are reconciled at once. Sends never
	// wait inside a pass (a busy channel requeues) and one organization holds at most
	// notify.MaxInFlight sends per channel, so a few workers keep every organization moving.
	DefaultWorkers = 4
	// DefaultPassTimeout bounds one reconcile pass, slow mail servers included: longer than
	// one SMTP conversation's timeout, so that a pass that is sending ends by itself.
	DefaultPassTimeout = 45 * time.Second
)
