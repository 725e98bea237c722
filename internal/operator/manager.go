// Package operator assembles Roster's manager: the scheme, the cache rules and the
// controllers and webhooks it runs. The manager binary, `make demo` and the envtest suites
// all build their manager here, so what is tested is what ships.
package operator

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
)

// NewScheme returns a scheme with the Kubernetes kinds and Roster's.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(rosterv1.AddToScheme(s))
	return s
}

// CacheOptions are the manager's cache rules. Every cached object loses what the
// controllers and webhooks never read (StripUnread), and the Secret cache holds only Secrets
// labelled as Roster's, so the manager never holds the cluster's other credentials in
// memory.
func CacheOptions() cache.Options { return cacheOptions(StripUnread()) }

// PortalCacheOptions are the portal's cache rules: as the manager's, except that cached
// objects keep their annotations. The portal writes back whole objects it read from its
// cache (a sign-up updates the Member), so an annotation missing from the cache would be
// removed from the object, and the webhooks refuse the portal changing annotations at all.
// managedFields may go: an update without them keeps the stored ones.
func PortalCacheOptions() cache.Options { return cacheOptions(cache.TransformStripManagedFields()) }

func cacheOptions(transform toolscache.TransformFunc) cache.Options {
	return cache.Options{
		DefaultTransform: transform,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{rosterv1.LabelPartOf: rosterv1.PartOfRoster})},
		},
	}
}

// StripUnread drops from an object what Roster's controllers and webhooks never read from
// the cache, which would otherwise be most of the memory a cached object takes: its
// managedFields, and kubectl's last-applied-configuration annotation (a JSON copy of the
// whole object as last applied, on everything created with client-side `kubectl apply`).
// The controllers write only through merge patches computed between two copies of the
// cached object, so what is missing from both is never written back.
func StripUnread() toolscache.TransformFunc {
	return func(in any) (any, error) {
		obj, err := meta.Accessor(in)
		if err != nil {
			return in, nil // not an object (a tombstone, say): nothing to strip
		}
		if obj.GetManagedFields() != nil {
			obj.SetManagedFields(nil)
		}
		if a := obj.GetAnnotations(); a != nil {
			if _, ok := a[corev1.LastAppliedConfigAnnotation]; ok {
				delete(a, corev1.LastAppliedConfigAnnotation)
				if len(a) == 0 {
					a = nil
				}
				obj.SetAnnotations(a)
			}
		}
		return in, nil
	}
}

// NewManager builds the manager's manager (controllers and webhooks) with Roster's scheme and
// cache rules; opts fills in the rest (metrics, health probes, leader election, webhook
// server).
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

// NewPortalManager builds the portal's manager: no controllers, the cache with
// PortalCacheOptions.
func NewPortalManager(cfg *rest.Config, opts manager.Options) (manager.Manager, error) {
	mgr, err := newManager(cfg, opts, PortalCacheOptions())
	if err != nil {
		return nil, err
	}
	// Each link opened finds its Secret by the token's hash.
	return mgr, membership.IndexSecretsByTokenHash(context.Background(), mgr.GetFieldIndexer())
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
