package operator_test

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	toolscache "k8s.io/client-go/tools/cache"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/operator"
)

// appliedMember is a Member as `kubectl apply` (client-side) leaves it: managedFields, the
// last-applied annotation with a copy of the object, and the fields the controllers read.
func appliedMember() *rosterv1.Member {
	return &rosterv1.Member{
		ObjectMeta: metav1.ObjectMeta{
			Name: "dana", Namespace: "acme", UID: "u-1", ResourceVersion: "42", Generation: 3,
			Labels: map[string]string{rosterv1.LabelShard: "eu", rosterv1.LabelDepartment: "People"},
			Annotations: map[string]string{
				corev1.LastAppliedConfigAnnotation: `{"apiVersion":"org.roster.dev/v1alpha1","kind":"Member","spec":{"username":"dana"}}`,
				"example.com/owner-team":           "people-ops",
			},
			Finalizers:      []string{rosterv1.Finalizer},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "org.roster.dev/v1alpha1", Kind: "Invitation", Name: "dana", UID: "u-0"}},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate,
				FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:username":{}}}`)}}},
		},
		Spec: rosterv1.MemberSpec{
			OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
			Username:        "dana", DisplayName: "Dana Scully", Email: "dana@acme.example",
			Role: rosterv1.RoleAccountAdmin, Access: rosterv1.AccessActive,
		},
		Status: rosterv1.MemberStatus{Phase: rosterv1.MemberActive, UsernameClaimed: true},
	}
}

func transform(t *testing.T, f toolscache.TransformFunc, in any) any {
	t.Helper()
	out, err := f(in)
	if err != nil {
		t.Fatalf("transform: %v", err)
	}
	return out
}

// The manager's cache keeps of an object what the controllers read (spec, status, labels,
// other annotations, finalizers, owners, identity) and drops managedFields and kubectl's
// last-applied copy of the object.
func TestManagerCacheStripsWhatControllersNeverRead(t *testing.T) {
	f := operator.CacheOptions().DefaultTransform
	if f == nil {
		t.Fatal("the manager's cache has no default transform")
	}
	want := appliedMember()
	got := transform(t, f, appliedMember()).(*rosterv1.Member)

	if got.ManagedFields != nil {
		t.Errorf("managedFields kept: %v", got.ManagedFields)
	}
	if _, ok := got.Annotations[corev1.LastAppliedConfigAnnotation]; ok {
		t.Errorf("the last-applied annotation was kept")
	}
	if got.Annotations["example.com/owner-team"] != "people-ops" || len(got.Annotations) != 1 {
		t.Errorf("annotations %v, want only example.com/owner-team", got.Annotations)
	}
	// Everything else is as it was.
	want.ManagedFields = nil
	want.Annotations = map[string]string{"example.com/owner-team": "people-ops"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("transform changed more than it should:\n got %+v\nwant %+v", got, want)
	}
}

// An object whose only annotation was the last-applied one ends with none, and Secrets keep
// their data (the link tokens and SMTP credentials the controllers read).
func TestManagerCacheStripsSecretsAndEmptyAnnotations(t *testing.T) {
	f := operator.CacheOptions().DefaultTransform
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "smtp", Namespace: "acme",
			Labels:        map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster},
			Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: `{"stringData":{"password":"hunter2"}}`},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Data: map[string][]byte{"host": []byte("smtp.example"), "password": []byte("hunter2")},
	}
	got := transform(t, f, sec).(*corev1.Secret)
	if got.Annotations != nil || got.ManagedFields != nil {
		t.Errorf("annotations %v, managedFields %v; want neither", got.Annotations, got.ManagedFields)
	}
	if string(got.Data["host"]) != "smtp.example" || string(got.Data["password"]) != "hunter2" || got.Labels[rosterv1.LabelPartOf] != rosterv1.PartOfRoster {
		t.Errorf("data or labels lost: %v %v", got.Data, got.Labels)
	}

	// Objects the cache holds as unstructured are stripped the same way; what is not an
	// object (a deletion tombstone) passes through untouched.
	u := &unstructured.Unstructured{}
	u.SetName("x")
	u.SetAnnotations(map[string]string{corev1.LastAppliedConfigAnnotation: "{}", "keep": "me"})
	u.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kubectl"}})
	gu := transform(t, f, u).(*unstructured.Unstructured)
	if len(gu.GetManagedFields()) != 0 || !reflect.DeepEqual(gu.GetAnnotations(), map[string]string{"keep": "me"}) {
		t.Errorf("unstructured: managedFields %v annotations %v", gu.GetManagedFields(), gu.GetAnnotations())
	}
	tomb := toolscache.DeletedFinalStateUnknown{Key: "acme/x", Obj: appliedMember()}
	if got := transform(t, f, tomb); !reflect.DeepEqual(got, tomb) {
		t.Errorf("a tombstone was changed: %+v", got)
	}
}

// The portal writes back whole objects it read from its cache, and the webhooks refuse it
// changing annotations, so its cache keeps them; it drops only managedFields.
func TestPortalCacheKeepsAnnotations(t *testing.T) {
	got := transform(t, operator.PortalCacheOptions().DefaultTransform, appliedMember()).(*rosterv1.Member)
	if got.ManagedFields != nil {
		t.Errorf("managedFields kept: %v", got.ManagedFields)
	}
	if !reflect.DeepEqual(got.Annotations, appliedMember().Annotations) {
		t.Errorf("annotations %v, want them all kept", got.Annotations)
	}
}
