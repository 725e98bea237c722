package v1alpha1

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/controllers"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/testenv"
	"github.com/roster-dev/roster/internal/testenv/rig"
)

// countingReader counts the objects its reads return: one per Get, one per listed item.
type countingReader struct {
	client.Reader
	objects atomic.Int64
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.objects.Add(1)
	return r.Reader.Get(ctx, key, obj, opts...)
}

func (r *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := r.Reader.List(ctx, list, opts...); err != nil {
		return err
	}
	r.objects.Add(int64(meta.LenList(list)))
	return nil
}

// TestInvitationAdmissionCostDoesNotGrow admits one invitation, as the Organization's admin,
// into an organization of 10 members and one of 2,000, against a real API server and the
// manager's cache with its indexes. It counts the objects the webhooks read: the counts are
// equal, so the cost of an invitation does not grow with the organization.
func TestInvitationAdmissionCostDoesNotGrow(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane")
	}
	env := testenv.New(false)
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start the control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	scheme := rig.Scheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	cch, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.SetupIndexes(ctx, cch); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cch.Start(ctx) }()

	const admin = "alice@acme.example"
	organization := func(members int) string {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cost-"}}
		if err := c.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		if err := c.Create(ctx, &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns.Name},
			Spec: rosterv1.OrganizationSpec{DisplayName: "Acme", Admins: []rosterv1.Subject{{Kind: "User", Name: admin}}}}); err != nil {
			t.Fatal(err)
		}
		work := make(chan int)
		var wg sync.WaitGroup
		var failed atomic.Value
		for range 16 {
			wg.Go(func() {
				for i := range work {
					err := c.Create(ctx, &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("m-%d", i), Namespace: ns.Name},
						Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Username: fmt.Sprintf("user-%d", i),
							Email: fmt.Sprintf("user-%d@acme.example", i), Phone: fmt.Sprintf("+49151%07d", i)}})
					if err != nil {
						failed.Store(err)
					}
				}
			})
		}
		for i := range members {
			work <- i
		}
		close(work)
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			t.Fatal(err)
		}
		// Wait until the cache holds them all.
		deadline := time.Now().Add(time.Minute)
		for {
			list := &rosterv1.MemberList{}
			if err := cch.List(ctx, list, client.InNamespace(ns.Name)); err != nil {
				t.Fatal(err)
			}
			if len(list.Items) == members {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cache has %d of %d members", len(list.Items), members)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return ns.Name
	}

	admit := func(ns string) int64 {
		reader := &countingReader{Reader: cch}
		apiReader := &countingReader{Reader: c}
		now := func() time.Time { return time.Now() }
		g := &gate{reader: reader, claims: membership.Claims{Client: c, Reader: apiReader},
			ledger: membership.Ledger{Client: c, Reader: apiReader}, now: now, decoder: admission.NewDecoder(scheme)}
		inv := &rosterv1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: ns}, Spec: rosterv1.InvitationSpec{
			OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Method: rosterv1.InvitationMethodEmail,
			Invitee: rosterv1.Invitee{Name: "New", Email: "new@acme.example", Phone: "+4915199999999"}}}
		actx := admission.NewContextWithRequest(ctx, admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Operation: admissionv1.Create, UserInfo: authenticationv1.UserInfo{Username: admin}, DryRun: ptr.To(false)}})
		if err := (&invitationDefaulter{g}).Default(actx, inv); err != nil {
			t.Fatalf("default: %v", err)
		}
		if _, err := (&invitationValidator{g}).ValidateCreate(actx, inv); err != nil {
			t.Fatalf("validate: %v", err)
		}
		if inv.Spec.InviterRole != rosterv1.RoleSuperAdmin {
			t.Fatalf("inviterRole = %q; the admin was not recognised", inv.Spec.InviterRole)
		}
		return reader.objects.Load() + apiReader.objects.Load()
	}

	small, large := admit(organization(10)), admit(organization(2000))
	t.Logf("objects read to admit one invitation: %d with 10 members, %d with 2,000", small, large)
	if small != large {
		t.Errorf("admitting an invitation read %d objects with 10 members and %d with 2,000; it must not grow", small, large)
	}
	if large > 10 {
		t.Errorf("admitting an invitation read %d objects; it should read a handful", large)
	}
}
