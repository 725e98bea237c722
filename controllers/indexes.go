package controllers

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// Cache indexes the controllers, webhooks and pages look things up by.
const (
	IndexOrganization = rosterv1.IndexOrganization
	IndexUsername     = rosterv1.IndexUsername
)

// SetupIndexes registers the cache indexes; call it once before the cache starts. Every
// lookup by these indexes names a namespace, and a manager's cache keys each object by its
// namespace only (see namespacedIndexer).
func SetupIndexes(ctx context.Context, idx client.FieldIndexer) error {
	if informers, ok := idx.(cache.Informers); ok {
		idx = namespacedIndexer{informers}
	}
	orgOf := map[client.Object]func(client.Object) string{
		&rosterv1.Invitation{}:    func(o client.Object) string { return o.(*rosterv1.Invitation).Spec.OrganizationRef.Name },
		&rosterv1.Member{}:        func(o client.Object) string { return o.(*rosterv1.Member).Spec.OrganizationRef.Name },
		&rosterv1.ExternalUser{}:  func(o client.Object) string { return o.(*rosterv1.ExternalUser).Spec.OrganizationRef.Name },
		&rosterv1.Collaboration{}: func(o client.Object) string { return o.(*rosterv1.Collaboration).Spec.OrganizationRef.Name },
	}
	for obj, f := range orgOf {
		if err := idx.IndexField(ctx, obj, IndexOrganization, func(o client.Object) []string { return []string{f(o)} }); err != nil {
			return err
		}
	}
	// One person's Members, found by what identifies them, so that neither admission nor
	// a controller lists a whole organization to find one person.
	personal := map[string]func(*rosterv1.Member) string{
		rosterv1.IndexUsername: func(m *rosterv1.Member) string { return m.Spec.Username },
		rosterv1.IndexEmail:    func(m *rosterv1.Member) string { return strings.ToLower(m.Spec.Email) },
		rosterv1.IndexPhone:    func(m *rosterv1.Member) string { return m.Spec.Phone },
	}
	for name, f := range personal {
		if err := idx.IndexField(ctx, &rosterv1.Member{}, name, func(o client.Object) []string {
			if v := f(o.(*rosterv1.Member)); v != "" {
				return []string{v}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	// External users by email in lower case, so that counting an organization's collaborators
	// finds whether one is an application's external user with one lookup, not a listing.
	if err := idx.IndexField(ctx, &rosterv1.ExternalUser{}, rosterv1.IndexEmail, func(o client.Object) []string {
		if v := strings.ToLower(o.(*rosterv1.ExternalUser).Spec.Email); v != "" {
			return []string{v}
		}
		return nil
	}); err != nil {
		return err
	}
	// External users by the Members on their teams, so that a member who leaves finds the
	// clients they served.
	return idx.IndexField(ctx, &rosterv1.ExternalUser{}, rosterv1.IndexTeamMember, func(o client.Object) []string {
		var names []string
		for _, t := range o.(*rosterv1.ExternalUser).Spec.Team {
			names = append(names, t.Member)
		}
		return names
	})
}

// namespacedIndexer registers field indexes on a controller-runtime cache whose keys name
// the object's namespace only. The cache's own IndexField keys every value of a namespaced
// object twice, in its namespace and across all namespaces, so that a List without
// InNamespace can use the index too; Roster never lists these across namespaces, and the
// second key made a third of what a cached Member costs. The keys are the cache's own
// ("<namespace>/<value>" under the index "field:<name>"), so a List with InNamespace and
// MatchingFields finds them as it finds its own; a List across namespaces finds nothing.
type namespacedIndexer struct{ informers cache.Informers }

func (n namespacedIndexer) IndexField(ctx context.Context, obj client.Object, field string, extract client.IndexerFunc) error {
	informer, err := n.informers.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	return informer.AddIndexers(toolscache.Indexers{fieldIndexName(field): func(raw any) ([]string, error) {
		o, ok := raw.(client.Object)
		if !ok {
			return nil, fmt.Errorf("object of type %T is not an Object", raw)
		}
		values := extract(o)
		keys := make([]string, len(values))
		for i, v := range values {
			keys[i] = namespacedKey(o.GetNamespace(), v)
		}
		return keys, nil
	}})
}

// fieldIndexName and namespacedKey are how controller-runtime's cache names a field index
// and keys a value in it (sigs.k8s.io/controller-runtime/pkg/cache/internal, which cannot be
// imported); TestNamespacedIndexesServeTheCachesLists proves they still agree.
func fieldIndexName(field string) string { return "field:" + field }

func namespacedKey(namespace, value string) string {
	if namespace == "" {
		return "__all_namespaces/" + value
	}
	return namespace + "/" + value
}

// requestsForOrganization maps an Organization to requests for the objects of kind list
// that belong to it, so they are reconciled again when their Organization changes.
func requestsForOrganization(c client.Reader, list client.ObjectList) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, org client.Object) []reconcile.Request {
		l := list.DeepCopyObject().(client.ObjectList)
		// Only the names are read: the cache's own objects serve, not a deep copy of every
		// child, which for a large organization would double the cache for a moment each
		// time the Organization changes (and once for each at start).
		if err := c.List(ctx, l, client.InNamespace(org.GetNamespace()), client.MatchingFields{IndexOrganization: org.GetName()},
			client.UnsafeDisableDeepCopy); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		_ = forEach(l, func(o client.Object) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}})
		})
		return reqs
	}
}

// forEach calls f for every item of a typed list.
func forEach(list client.ObjectList, f func(client.Object)) error {
	items, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	for _, it := range items {
		if o, ok := it.(client.Object); ok {
			f(o)
		}
	}
	return nil
}
