package v1alpha1

// The harness the fuzz targets in fuzz_test.go share: a small, fixed organization in a
// controller-runtime fake client (the only place these tests use one: the webhooks read
// through a client.Reader, and a pure-unit fuzz cannot start an API server per input), and
// the API server's admission pipeline around the webhooks, modelled closely enough that a
// decision here is the decision a cluster makes: structural defaults from the CRD, the
// mutating webhook, the status subresource's reset of everything but status (and of
// status on the main resource), the CRD's CEL validation rules, then the validating webhook.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	celschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	clientgoapplyconfigurations "k8s.io/client-go/applyconfigurations"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/controllers"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/testenv/rig"
)

const (
	fzNS      = "roster-fuzz"
	fzManager = "system:serviceaccount:roster-system:roster-manager"
	fzPortal  = "system:serviceaccount:roster-system:roster-portal"
	fzGC      = "system:serviceaccount:kube-system:generic-garbage-collector"
	fzDoor    = "4711001" // acme's door number, claimed
)

// fzNow is the webhooks' clock: licenses and quotas are judged at a fixed moment, so the
// same input always gets the same decision.
var fzNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// fzUser is a requester.
type fzUser struct {
	Name   string
	Groups []string
}

// fzUsers are everyone who asks. Their standing is fixed by the world below and written out
// independently in fzRole, so the properties do not ask the code under test who is who.
var fzUsers = []fzUser{
	{Name: "alice@acme.example"},                        // 0: Super Admin of acme and doomed (spec.admins)
	{Name: "gina", Groups: []string{"acme:people-ops"}}, // 1: Super Admin of acme through a group
	{Name: "dana"}, // 2: AccountAdmin of acme
	{Name: "adam"}, // 3: Admin of acme
	{Name: "mia"},  // 4: Member of acme
	{Name: "pete"}, // 5: an Admin of acme still waiting for approval: no role
	{Name: "tess"}, // 6: an Admin of acme who was removed: no role
	{Name: "oscar", Groups: []string{"system:authenticated"}}, // 7: nobody
	{Name: fzPortal},           // 8: the portal
	{Name: fzManager},          // 9: the manager
	{Name: fzGC},               // 10: the cluster's garbage collector
	{Name: "system:anonymous"}, // 11: an unauthenticated request
}

func (u fzUser) trusted() bool { return u.Name == fzManager }
func (u fzUser) portal() bool  { return u.Name == fzPortal }
func (u fzUser) system() bool  { return u.Name == fzGC }

// fzStanding is what a requester is in an organization of the world, written out by hand.
type fzStanding struct {
	exists, deleting bool
	role             rosterv1.Role
}

func fzRole(u fzUser, namespace, org string) fzStanding {
	if namespace != fzNS {
		return fzStanding{}
	}
	switch org {
	case "acme":
		roles := map[string]rosterv1.Role{"alice@acme.example": rosterv1.RoleSuperAdmin, "gina": rosterv1.RoleSuperAdmin,
			"dana": rosterv1.RoleAccountAdmin, "adam": rosterv1.RoleAdmin, "mia": rosterv1.RoleMember}
		return fzStanding{exists: true, role: roles[u.Name]}
	case "doomed":
		s := fzStanding{exists: true, deleting: true}
		if u.Name == "alice@acme.example" {
			s.role = rosterv1.RoleSuperAdmin
		}
		return s
	}
	return fzStanding{}
}

// fzWorldObjects builds the world: acme (the sample Organization, with a door number, a
// self-service and an expired application), doomed (being deleted), acme's members, and the
// claims on acme's door number and mia's username.
var fzWorldObjects = sync.OnceValues(func() ([]client.Object, error) {
	org := &rosterv1.Organization{}
	if err := readSample("org_v1alpha1_organization.yaml", org); err != nil {
		return nil, err
	}
	org.Namespace = fzNS
	org.Spec.DoorNumber, org.Status.DoorNumber = fzDoor, fzDoor
	org.Spec.Applications = append(org.Spec.Applications,
		rosterv1.Application{Name: "wiki", Portal: rosterv1.Portal{Enabled: true, SelfRegistration: true},
			License: rosterv1.License{Seats: 5}},
		rosterv1.Application{Name: "legacy", Portal: rosterv1.Portal{Enabled: true, SelfRegistration: true},
			License: rosterv1.License{Seats: 3, ExpiresAt: &metav1.Time{Time: fzNow.Add(-24 * time.Hour)}}})
	doomed := &rosterv1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: "doomed", Namespace: fzNS, DeletionTimestamp: &metav1.Time{Time: fzNow.Add(-time.Minute)},
			Finalizers: []string{rosterv1.Finalizer}},
		Spec: rosterv1.OrganizationSpec{DisplayName: "Doomed", Admins: []rosterv1.Subject{{Kind: "User", Name: "alice@acme.example"}},
			Applications: []rosterv1.Application{{Name: "wiki", Portal: rosterv1.Portal{Enabled: true, SelfRegistration: true}, License: rosterv1.License{Seats: 5}}}},
	}
	objs := []client.Object{org, doomed}
	member := func(username string, role rosterv1.Role, phase rosterv1.MemberPhase, access rosterv1.Access) *rosterv1.Member {
		return &rosterv1.Member{
			ObjectMeta: metav1.ObjectMeta{Name: username, Namespace: fzNS},
			Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Username: username,
				DisplayName: username, Email: username + "@acme.example", Role: role, Access: access},
			Status: rosterv1.MemberStatus{Phase: phase, UsernameClaimed: true},
		}
	}
	objs = append(objs,
		member("dana", rosterv1.RoleAccountAdmin, rosterv1.MemberActive, rosterv1.AccessActive),
		member("adam", rosterv1.RoleAdmin, rosterv1.MemberActive, rosterv1.AccessActive),
		member("mia", rosterv1.RoleMember, rosterv1.MemberActive, rosterv1.AccessActive),
		member("pete", rosterv1.RoleAdmin, rosterv1.MemberPending, rosterv1.AccessActive),
		member("tess", rosterv1.RoleAdmin, rosterv1.MemberTerminated, rosterv1.AccessTerminated),
		&rosterv1.Claim{ObjectMeta: metav1.ObjectMeta{Name: membership.DoorNumberClaimName(fzDoor)},
			Spec: rosterv1.ClaimSpec{Kind: rosterv1.ClaimDoorNumber, Value: fzDoor, Holder: rosterv1.ClaimHolder{Kind: "Organization", Namespace: fzNS, Name: "acme"}}},
		&rosterv1.Claim{ObjectMeta: metav1.ObjectMeta{Name: membership.UsernameClaimName(fzNS, "acme", "mia")},
			Spec: rosterv1.ClaimSpec{Kind: rosterv1.ClaimUsername, Value: "mia", Holder: rosterv1.ClaimHolder{Kind: "Member", Namespace: fzNS, Name: "mia"}}},
	)
	return objs, nil
})

var fzScheme = sync.OnceValue(rig.Scheme)

// fzTypeConverters are the fake client's, built once: building them is most of the cost of
// a fake client.
var fzTypeConverters = sync.OnceValue(func() []managedfields.TypeConverter {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	return []managedfields.TypeConverter{clientgoapplyconfigurations.NewTypeConverter(s), managedfields.NewDeducedTypeConverter()}
})

// indexingBuilder registers the manager's field indexes (controllers.SetupIndexes) with a
// fake client, so that the webhooks' indexed lists work as on the manager's cache.
type indexingBuilder struct{ b *fake.ClientBuilder }

func (i indexingBuilder) IndexField(_ context.Context, obj client.Object, field string, f client.IndexerFunc) error {
	i.b.WithIndex(obj, field, f)
	return nil
}

// newFuzzGate is the webhooks' gate over a fresh copy of the world: every decision starts
// from the same state (the quota ledger is the one thing a webhook writes).
func newFuzzGate(t testing.TB) *gate {
	objs, err := fzWorldObjects()
	if err != nil {
		t.Fatal(err)
	}
	copies := make([]client.Object, len(objs))
	for i, o := range objs {
		copies[i] = o.DeepCopyObject().(client.Object)
	}
	b := fake.NewClientBuilder().WithScheme(fzScheme()).WithTypeConverters(fzTypeConverters()...).WithObjects(copies...)
	if err := controllers.SetupIndexes(context.Background(), indexingBuilder{b}); err != nil {
		t.Fatal(err)
	}
	c := b.Build()
	return &gate{reader: c, trusted: []string{fzManager}, portal: []string{fzPortal},
		claims: membership.Claims{Client: c, Reader: c}, ledger: membership.Ledger{Client: c, Reader: c},
		now: func() time.Time { return fzNow }, decoder: admission.NewDecoder(fzScheme())}
}

// readSample reads one object of config/samples; for a file of several, the first.
func readSample(file string, into any) error {
	docs, err := sampleDocs(file)
	if err != nil {
		return err
	}
	return json.Unmarshal(docs[0], into)
}

// sampleDocs are the objects of a file in config/samples, as JSON.
func sampleDocs(file string) ([][]byte, error) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "samples", file))
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, doc := range splitYAML(raw) {
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if string(j) != "null" {
			out = append(out, j)
		}
	}
	return out, nil
}

func splitYAML(raw []byte) [][]byte {
	var docs [][]byte
	start := 0
	for i := 0; i+4 <= len(raw); i++ {
		if (i == 0 || raw[i-1] == '\n') && string(raw[i:i+3]) == "---" && (i+3 == len(raw) || raw[i+3] == '\n') {
			docs = append(docs, raw[start:i])
			start = i + 4
		}
	}
	return append(docs, raw[start:])
}

// crdSchema is a CRD's structural schema and its CEL rules, as the API server runs them.
type crdSchema struct {
	structural *structuralschema.Structural
	cel        *celschema.Validator
}

var crdSchemas sync.Map // file → func() (*crdSchema, error)

func loadCRD(file string) (*crdSchema, error) {
	f, _ := crdSchemas.LoadOrStore(file, sync.OnceValues(func() (*crdSchema, error) {
		raw, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "crd", "bases", file))
		if err != nil {
			return nil, err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(raw, crd); err != nil {
			return nil, err
		}
		internal := &apiextensionsinternal.JSONSchemaProps{}
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, internal, nil); err != nil {
			return nil, err
		}
		s, err := structuralschema.NewStructural(internal)
		if err != nil {
			return nil, err
		}
		return &crdSchema{structural: s, cel: celschema.NewValidator(s, true, celconfig.PerCallLimit)}, nil
	}))
	return f.(func() (*crdSchema, error))()
}

// defaults applies the CRD's defaults to obj, as the API server does when it decodes a
// request and reads from etcd.
func (s *crdSchema) defaults(obj runtime.Object) error {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	structuraldefaulting.Default(u, s.structural)
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u, obj)
}

// validate runs the CRD's CEL rules on obj, with old for the transition rules (nil on
// create). The rules' errors come in no fixed order (the validator walks maps); they are
// sorted, so that one request always gets one answer.
func (s *crdSchema) validate(obj, old runtime.Object) error {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	var o any
	if old != nil {
		om, err := runtime.DefaultUnstructuredConverter.ToUnstructured(old)
		if err != nil {
			return err
		}
		o = om
	}
	errs, _ := s.cel.Validate(context.Background(), nil, s.structural, u, o, celconfig.RuntimeCELCostBudget)
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	slices.Sort(msgs)
	return errors.New(strings.Join(msgs, "; "))
}

// fzKind adapts one kind's webhooks to the harness.
type fzKind[T client.Object] struct {
	kind      string
	crd       string
	newObj    func() T
	defaulter func(*gate) admission.Defaulter[T] // nil when the kind has no mutating webhook
	validator func(*gate) admission.Validator[T]
	// setStatus makes dst's status a copy of src's.
	setStatus func(dst, src T)
	// mutators change one field of an object to a value picked by the byte.
	mutators []fzMutator[T]
	// bases are the seed objects, which an input that is not JSON stands for.
	bases [][]byte
}

// fzCase is one admission request.
type fzCase[T client.Object] struct {
	User   fzUser
	Op     admissionv1.Operation
	Sub    string // "" or "status"
	DryRun bool
	Old    T // nil on create
	Obj    T // nil on delete
}

// fzVerdict is the pipeline's answer and what the validating webhook saw.
type fzVerdict[T client.Object] struct {
	// Stage is where the request was refused: "mutate", "schema" or "validate"; "" when it
	// was admitted.
	Stage    string
	Err      string
	Code     int32
	Warnings []string
	// Old and Obj are the objects the validating webhook was given.
	Old, Obj T
}

func (v fzVerdict[T]) allowed() bool { return v.Stage == "" }

// request is the admission request the API server sends for c.
func (k *fzKind[T]) request(c fzCase[T], old, obj T, has func(T) bool) admission.Request {
	raw := func(o T) runtime.RawExtension {
		if !has(o) {
			return runtime.RawExtension{}
		}
		b, err := json.Marshal(o)
		if err != nil {
			panic(err)
		}
		return runtime.RawExtension{Raw: b}
	}
	name := ""
	if has(obj) {
		name = obj.GetName()
	} else if has(old) {
		name = old.GetName()
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "fuzz",
		Kind:      metav1.GroupVersionKind{Group: rosterv1.GroupVersion.Group, Version: rosterv1.GroupVersion.Version, Kind: k.kind},
		Namespace: fzNS, Name: name, Operation: c.Op, SubResource: c.Sub,
		UserInfo: authenticationv1.UserInfo{Username: c.User.Name, Groups: c.User.Groups},
		DryRun:   ptr.To(c.DryRun), Object: raw(obj), OldObject: raw(old),
	}}
}

// admit runs c through the API server's admission pipeline on a fresh world.
func (k *fzKind[T]) admit(t testing.TB, c fzCase[T]) fzVerdict[T] {
	var none T
	has := func(o T) bool { return any(o) != any(none) }
	s, err := loadCRD(k.crd)
	if err != nil {
		t.Fatal(err)
	}
	old, obj := none, none
	if has(c.Old) {
		old = c.Old.DeepCopyObject().(T)
		if err := s.defaults(old); err != nil {
			t.Fatal(err)
		}
	}
	if has(c.Obj) {
		obj = c.Obj.DeepCopyObject().(T)
		if err := s.defaults(obj); err != nil {
			t.Fatal(err)
		}
	}
	g := newFuzzGate(t)
	ctx := admission.NewContextWithRequest(context.Background(), k.request(c, old, obj, has))
	refused := func(stage string, err error) fzVerdict[T] {
		v := fzVerdict[T]{Stage: stage, Err: err.Error(), Old: old, Obj: obj}
		if st, ok := err.(apierrors.APIStatus); ok {
			v.Code = st.Status().Code
		}
		return v
	}
	mutate := func() error {
		if k.defaulter == nil || c.Sub != "" {
			return nil
		}
		if err := k.defaulter(g).Default(ctx, obj); err != nil {
			return err
		}
		return s.defaults(obj)
	}
	var warnings admission.Warnings
	switch c.Op {
	case admissionv1.Delete:
		warnings, err = k.validator(g).ValidateDelete(ctx, old)
	case admissionv1.Create:
		if err := mutate(); err != nil {
			return refused("mutate", err)
		}
		k.setStatus(obj, k.newObj()) // status is Roster's to write, through the subresource
		if err := s.validate(obj, nil); err != nil {
			return refused("schema", err)
		}
		warnings, err = k.validator(g).ValidateCreate(ctx, obj)
	case admissionv1.Update:
		if err := mutate(); err != nil {
			return refused("mutate", err)
		}
		if c.Sub == "status" {
			// The status subresource keeps everything of the stored object but its status.
			n := old.DeepCopyObject().(T)
			k.setStatus(n, obj)
			obj = n
		} else {
			k.setStatus(obj, old)
		}
		if err := s.validate(obj, old); err != nil {
			return refused("schema", err)
		}
		warnings, err = k.validator(g).ValidateUpdate(ctx, old, obj)
	}
	if err != nil {
		v := refused("validate", err)
		v.Warnings = warnings
		return v
	}
	return fzVerdict[T]{Warnings: warnings, Old: old, Obj: obj}
}

// defaultsIdempotent checks that the mutating webhook changes nothing the second time it
// sees its own output: defaulting twice is defaulting once.
func (k *fzKind[T]) defaultsIdempotent(t *testing.T, c fzCase[T]) {
	var none T
	has := func(o T) bool { return any(o) != any(none) }
	if k.defaulter == nil || c.Sub != "" || c.Op == admissionv1.Delete {
		return
	}
	s, err := loadCRD(k.crd)
	if err != nil {
		t.Fatal(err)
	}
	old := none
	if has(c.Old) {
		old = c.Old.DeepCopyObject().(T)
		if err := s.defaults(old); err != nil {
			t.Fatal(err)
		}
	}
	once := c.Obj.DeepCopyObject().(T)
	if err := s.defaults(once); err != nil {
		t.Fatal(err)
	}
	g := newFuzzGate(t)
	ctx := admission.NewContextWithRequest(context.Background(), k.request(c, old, once, has))
	if err := k.defaulter(g).Default(ctx, once); err != nil {
		return
	}
	twice := once.DeepCopyObject().(T)
	ctx = admission.NewContextWithRequest(context.Background(), k.request(c, old, twice, has))
	if err := k.defaulter(g).Default(ctx, twice); err != nil {
		t.Fatalf("defaulting its own output failed: %v", err)
	}
	if a, b := mustJSON(t, once), mustJSON(t, twice); a != b {
		t.Fatalf("defaulting is not idempotent:\nonce:  %s\ntwice: %s", a, b)
	}
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
