package bulk_test

import (
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/bulk"
)

// outcomes is how the tests compare object results: name, outcome and message.
func outcomes(res bulk.EditResult) []string {
	out := make([]string, 0, len(res.Objects))
	for _, o := range res.Objects {
		out = append(out, fmt.Sprintf("%s %s: %s", o.Name, o.Outcome, o.Message))
	}
	return out
}

// mergePatch changes an object the way another admin would meanwhile.
func mergePatch(ctx context.Context, obj client.Object, patch string) {
	Expect(k8sClient.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
}

var _ = Describe("F12 bulk edit of department, position and location", func() {
	var ns string
	acme := rosterv1.OrganizationReference{Name: "acme"}

	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		newOrganization(ctx, ns, "acme")
		newOrganization(ctx, ns, "other")
		newMember(ctx, ns, "sales-1", rosterv1.MemberSpec{OrganizationRef: acme, DisplayName: "Sam",
			WorkDetails: rosterv1.WorkDetails{Department: "Sales", Position: "Rep", WorkNumber: "+49 89 1", Location: "Munich"}},
			rosterv1.MemberActive, nil)
		newMember(ctx, ns, "sales-2", rosterv1.MemberSpec{OrganizationRef: acme, DisplayName: "Sue",
			WorkDetails: rosterv1.WorkDetails{Department: "sales", Position: "Lead"}},
			rosterv1.MemberPending, nil)
		newMember(ctx, ns, "eng-1", rosterv1.MemberSpec{OrganizationRef: acme, DisplayName: "Eve",
			WorkDetails: rosterv1.WorkDetails{Department: "Engineering", Position: "Engineer", Location: "Berlin"}},
			rosterv1.MemberActive, nil)
		newMember(ctx, ns, "other-sales", rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "other"},
			WorkDetails: rosterv1.WorkDetails{Department: "Sales"}}, rosterv1.MemberActive, nil)
	})

	It("changes only the given fields of the members in a department", func(ctx SpecContext) {
		untouched := map[string]*rosterv1.Member{"eng-1": getMember(ctx, ns, "eng-1"), "other-sales": getMember(ctx, ns, "other-sales")}

		res, err := bulk.Edit(ctx, bulkClient(), ns, "acme", bulk.Selector{Department: "SALES"},
			bulk.WorkChanges{Department: ptr.To("Sales EMEA"), Location: ptr.To("Berlin")})
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{
			`sales-1 changed: department "Sales" → "Sales EMEA", location "Munich" → "Berlin"`,
			`sales-2 changed: department "sales" → "Sales EMEA", location "" → "Berlin"`,
		}))

		Expect(getMember(ctx, ns, "sales-1").Spec.WorkDetails).To(Equal(rosterv1.WorkDetails{
			Department: "Sales EMEA", Position: "Rep", WorkNumber: "+49 89 1", Location: "Berlin"}))
		Expect(getMember(ctx, ns, "sales-2").Spec.WorkDetails).To(Equal(rosterv1.WorkDetails{
			Department: "Sales EMEA", Position: "Lead", Location: "Berlin"}))
		for name, before := range untouched {
			Expect(getMember(ctx, ns, name).ResourceVersion).To(Equal(before.ResourceVersion), name)
		}
	})

	It("reports names that cannot be chosen and members already as asked", func(ctx SpecContext) {
		res, err := bulk.Edit(ctx, bulkClient(), ns, "acme",
			bulk.Selector{Names: []string{"sales-1", "ghost", "other-sales", "eng-1"}},
			bulk.WorkChanges{Position: ptr.To("Engineer")})
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{
			"eng-1 unchanged: already has these details",
			"ghost failed: not found",
			`other-sales failed: not changed: it belongs to organization "other", not "acme"`,
			`sales-1 changed: position "Rep" → "Engineer"`,
		}))
		Expect(res.OK()).To(BeFalse())
		Expect(getMember(ctx, ns, "other-sales").Spec.Position).To(BeEmpty())
	})

	It("chooses by label selector and clears a field given as empty", func(ctx SpecContext) {
		res, err := bulk.Edit(ctx, bulkClient(), ns, "acme",
			bulk.Selector{LabelSelector: rosterv1.LabelPhase + "=Active"}, bulk.WorkChanges{Location: ptr.To("")})
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{
			`eng-1 changed: location "Berlin" → ""`,
			`sales-1 changed: location "Munich" → ""`,
		}))
		Expect(getMember(ctx, ns, "sales-1").Spec.Location).To(BeEmpty())
		Expect(getMember(ctx, ns, "sales-2").Spec.Position).To(Equal("Lead"))
	})

	It("keeps what someone else changed meanwhile", func(ctx SpecContext) {
		// Just before the edit lands, another admin changes the position.
		c := interceptor.NewClient(k8sClient, interceptor.Funcs{
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				mergePatch(ctx, &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: obj.GetName()}},
					`{"spec":{"position":"Changed meanwhile"}}`)
				return c.Patch(ctx, obj, patch, opts...)
			},
		})
		res, err := bulk.Edit(ctx, c, ns, "acme", bulk.Selector{Names: []string{"sales-1"}},
			bulk.WorkChanges{Department: ptr.To("Sales EMEA")})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.With(bulk.Changed)).To(HaveLen(1))
		Expect(getMember(ctx, ns, "sales-1").Spec.WorkDetails).To(Equal(rosterv1.WorkDetails{
			Department: "Sales EMEA", Position: "Changed meanwhile", WorkNumber: "+49 89 1", Location: "Munich"}))
	})

	It("refuses to edit without a choice, without a change or in an unknown organization", func(ctx SpecContext) {
		_, err := bulk.Edit(ctx, bulkClient(), ns, "acme", bulk.Selector{}, bulk.WorkChanges{Position: ptr.To("x")})
		Expect(err).To(MatchError(ContainSubstring("choose the objects")))
		_, err = bulk.Edit(ctx, bulkClient(), ns, "acme", bulk.Selector{Names: []string{"sales-1"}}, bulk.WorkChanges{})
		Expect(err).To(MatchError(ContainSubstring("nothing to change")))
		_, err = bulk.Edit(ctx, bulkClient(), ns, "acme", bulk.Selector{LabelSelector: "a in (b"}, bulk.WorkChanges{Position: ptr.To("x")})
		Expect(err).To(MatchError(ContainSubstring("label selector")))
		_, err = bulk.Edit(ctx, bulkClient(), ns, "acne", bulk.Selector{Department: "Sales"}, bulk.WorkChanges{Position: ptr.To("x")})
		Expect(err).To(MatchError(ContainSubstring(`there is no Organization "acne"`)))
		Expect(getMember(ctx, ns, "sales-1").Spec.Position).To(Equal("Rep"))
	})
})

var _ = Describe("Approve, Reject, Restore and Terminate", func() {
	var ns string
	acme := rosterv1.OrganizationReference{Name: "acme"}

	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		newOrganization(ctx, ns, "acme")
		newMember(ctx, ns, "pending-1", rosterv1.MemberSpec{OrganizationRef: acme, Username: "p1"}, rosterv1.MemberPending, nil)
		newMember(ctx, ns, "pending-2", rosterv1.MemberSpec{OrganizationRef: acme, Username: "p2"}, rosterv1.MemberPending, nil)
		newMember(ctx, ns, "active-1", rosterv1.MemberSpec{OrganizationRef: acme, Username: "a1",
			Approval: rosterv1.ApprovalApproved}, rosterv1.MemberActive, nil)
		newMember(ctx, ns, "gone-1", rosterv1.MemberSpec{OrganizationRef: acme, Username: "g1",
			Access: rosterv1.AccessTerminated}, rosterv1.MemberTerminated, nil)
	})

	approval := func(ctx SpecContext, name string) rosterv1.Approval { return getMember(ctx, ns, name).Spec.Approval }
	access := func(ctx SpecContext, name string) rosterv1.Access { return getMember(ctx, ns, name).Spec.Access }

	It("approves the members a selector chooses", func(ctx SpecContext) {
		res, err := bulk.Approve(ctx, bulkClient(), ns, "acme", bulk.Selector{LabelSelector: rosterv1.LabelPhase + "=Pending"})
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{
			`pending-1 changed: approval "" → "Approved"`,
			`pending-2 changed: approval "" → "Approved"`,
		}))
		Expect(approval(ctx, "pending-1")).To(Equal(rosterv1.ApprovalApproved))
		Expect(approval(ctx, "pending-2")).To(Equal(rosterv1.ApprovalApproved))
		Expect(approval(ctx, "gone-1")).To(Equal(rosterv1.ApprovalNone))

		res, err = bulk.Approve(ctx, bulkClient(), ns, "acme", bulk.Selector{Names: []string{"active-1"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{"active-1 unchanged: approval is already Approved"}))
	})

	It("rejects the members named", func(ctx SpecContext) {
		res, err := bulk.Reject(ctx, bulkClient(), ns, "acme", bulk.Selector{Names: []string{"pending-2"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{`pending-2 changed: approval "" → "Rejected"`}))
		Expect(approval(ctx, "pending-2")).To(Equal(rosterv1.ApprovalRejected))
		Expect(approval(ctx, "pending-1")).To(Equal(rosterv1.ApprovalNone))
	})

	It("terminates and restores, keeping the approval", func(ctx SpecContext) {
		res, err := bulk.Terminate(ctx, bulkClient(), ns, "acme", bulk.Selector{Names: []string{"active-1", "gone-1"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{
			`active-1 changed: access "Active" → "Terminated"`,
			"gone-1 unchanged: access is already Terminated",
		}))
		Expect(access(ctx, "active-1")).To(Equal(rosterv1.AccessTerminated))
		Expect(approval(ctx, "active-1")).To(Equal(rosterv1.ApprovalApproved))
		Expect(access(ctx, "pending-1")).To(Equal(rosterv1.AccessActive))

		res, err = bulk.Restore(ctx, bulkClient(), ns, "", bulk.Selector{Names: []string{"active-1", "gone-1", "pending-1"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{
			`active-1 changed: access "Terminated" → "Active"`,
			`gone-1 changed: access "Terminated" → "Active"`,
			"pending-1 unchanged: access is already Active",
		}))
		Expect(access(ctx, "gone-1")).To(Equal(rosterv1.AccessActive))
	})
})

var _ = Describe("Resend", func() {
	var ns string

	newInvitation := func(ctx SpecContext, name, org string, resends int32, phase rosterv1.InvitationPhase) {
		inv := &rosterv1.Invitation{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{rosterv1.LabelSource: rosterv1.SourceImport}},
			Spec: rosterv1.InvitationSpec{OrganizationRef: rosterv1.OrganizationReference{Name: org},
				Method: rosterv1.InvitationMethodEmail, Invitee: rosterv1.Invitee{Email: name + "@acme.example"},
				ResendRequests: resends},
		}
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		if phase != "" {
			inv.Status.Phase = phase
			Expect(k8sClient.Status().Update(ctx, inv)).To(Succeed())
		}
	}
	resends := func(ctx SpecContext, name string) int32 {
		return getInvitation(ctx, ns, name).Spec.ResendRequests
	}

	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		newOrganization(ctx, ns, "acme")
		newOrganization(ctx, ns, "other")
		newInvitation(ctx, "inv-a", "acme", 0, rosterv1.InvitationSent)
		newInvitation(ctx, "inv-b", "acme", 2, rosterv1.InvitationExpired)
		newInvitation(ctx, "inv-c", "acme", 0, rosterv1.InvitationAccepted)
		newInvitation(ctx, "inv-d", "other", 0, rosterv1.InvitationSent)
	})

	It("raises resendRequests by one on the chosen invitations, except accepted ones", func(ctx SpecContext) {
		res, err := bulk.Resend(ctx, bulkClient(), ns, "acme", bulk.Selector{LabelSelector: rosterv1.LabelSource + "=" + rosterv1.SourceImport})
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{
			"inv-a changed: resendRequests 0 → 1",
			"inv-b changed: resendRequests 2 → 3",
			"inv-c unchanged: already accepted; there is nothing to resend",
		}))
		Expect(resends(ctx, "inv-a")).To(Equal(int32(1)))
		Expect(resends(ctx, "inv-b")).To(Equal(int32(3)))
		Expect(resends(ctx, "inv-c")).To(Equal(int32(0)))
		Expect(resends(ctx, "inv-d")).To(Equal(int32(0)))
	})

	It("counts a resend another admin made meanwhile instead of overwriting it", func(ctx SpecContext) {
		raced := false
		c := interceptor.NewClient(k8sClient, interceptor.Funcs{
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				if !raced {
					raced = true
					// The other admin's resend lands between our read and our patch.
					mergePatch(ctx, &rosterv1.Invitation{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: obj.GetName()}},
						`{"spec":{"resendRequests":1}}`)
				}
				return c.Patch(ctx, obj, patch, opts...)
			},
		})
		res, err := bulk.Resend(ctx, c, ns, "acme", bulk.Selector{Names: []string{"inv-a"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(raced).To(BeTrue())
		Expect(outcomes(res)).To(Equal([]string{"inv-a changed: resendRequests 1 → 2"}))
		Expect(resends(ctx, "inv-a")).To(Equal(int32(2)))
	})
})
