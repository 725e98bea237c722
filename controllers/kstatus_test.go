package controllers_test

import (
	"context"
	"errors"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/notify"
)

// What a GitOps dashboard shows: every phase of every kind, read with kstatus, the library
// Flux and kubectl wait use. A person has nothing to do for Current; InProgress means Roster is
// still on it; Failed means someone must act, and says why.
var _ = Describe("kstatus", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("invitations: sending is InProgress, Sent and Accepted are Current, Expired and Failed are Failed with the reason", func(ctx context.Context) {
		newOrganization(ctx, ns, func(o *rosterv1.Organization) { o.Spec.InvitationTTL = metav1.Duration{Duration: time.Hour} })

		By("a delivery being retried")
		notifier.fail("retrying@kstatus.example", errors.New("connection refused"))
		retrying := invitation(ns, "retrying", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "retrying@kstatus.example"})
		Expect(adminClient.Create(ctx, retrying)).To(Succeed())
		expectStatus(ctx, retrying, status.InProgressStatus, "")

		By("sent, then accepted")
		sent := invite(ctx, adminClient, invitation(ns, "sent", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "sent@kstatus.example"}), rosterv1.InvitationSent)
		expectStatus(ctx, sent, status.CurrentStatus, "")
		_, err := accept(ctx, "sent@kstatus.example", membership.SignUp{Username: "sent"})
		Expect(err).NotTo(HaveOccurred())
		waitInvitation(ctx, sent, rosterv1.InvitationAccepted)
		expectStatus(ctx, sent, status.CurrentStatus, "")

		By("failed for good")
		notifier.fail("failed@kstatus.example", notify.ErrNotConfigured)
		failed := invite(ctx, adminClient, invitation(ns, "failed", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "failed@kstatus.example"}), rosterv1.InvitationFailed)
		expectStatus(ctx, failed, status.FailedStatus, "could not be delivered")

		By("expired")
		notifier.fail("retrying@kstatus.example", nil)
		expiring := invite(ctx, adminClient, invitation(ns, "expiring", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "expiring@kstatus.example"}), rosterv1.InvitationSent)
		fakeClock.Step(61 * time.Minute)
		poke(ctx, expiring)
		waitInvitation(ctx, expiring, rosterv1.InvitationExpired)
		expectStatus(ctx, expiring, status.FailedStatus, "expired unused")

		By("a resend revives it: InProgress or Current, never Failed")
		Expect(setSpec(ctx, adminClient, expiring, `{"resendRequests":1}`)).To(Succeed())
		waitInvitation(ctx, expiring, rosterv1.InvitationSent)
		expectStatus(ctx, expiring, status.CurrentStatus, "")
	})

	It("members: Active, Rejected and Terminated are Current; Inactivated and Pending wait for a person, InProgress", func(ctx context.Context) {
		newOrganization(ctx, ns)
		invite(ctx, adminClient, invitation(ns, "invited", rosterv1.InvitationMethodLink, rosterv1.Invitee{Name: "I"}), rosterv1.InvitationSent)
		member(ctx, ns, "pending", "pending@kstatus.example", rosterv1.RoleMember, func(m *rosterv1.Member) {
			m.Spec.Provenance.JoinMethod = rosterv1.JoinMethodPublicLink
		})
		member(ctx, ns, "active", "active@kstatus.example", rosterv1.RoleMember)
		member(ctx, ns, "rejected", "rejected@kstatus.example", rosterv1.RoleMember, func(m *rosterv1.Member) { m.Spec.Approval = rosterv1.ApprovalRejected })
		member(ctx, ns, "removed", "removed@kstatus.example", rosterv1.RoleMember, func(m *rosterv1.Member) { m.Spec.Access = rosterv1.AccessTerminated })
		for _, c := range []struct {
			name    string
			phase   rosterv1.MemberPhase
			want    status.Status
			message string
		}{
			{"invited", rosterv1.MemberInactivated, status.InProgressStatus, "waiting for the person to open the invitation link"},
			{"pending", rosterv1.MemberPending, status.InProgressStatus, "waiting for an admin's approval"},
			{"active", rosterv1.MemberActive, status.CurrentStatus, ""},
			{"rejected", rosterv1.MemberRejected, status.CurrentStatus, ""},
			{"removed", rosterv1.MemberTerminated, status.CurrentStatus, ""},
		} {
			expectStatus(ctx, waitMember(ctx, ns, c.name, c.phase), c.want, c.message)
		}
	})

	It("external users: Active, Locked and Rejected are Current; Invited, PendingApproval and WaitingForSeat wait, InProgress", func(ctx context.Context) {
		app := licensed("one", 1)
		app.Portal.ApprovalRequired = true
		newOrganization(ctx, ns, withApps(app))
		for _, x := range []*rosterv1.ExternalUser{
			externalUser(ns, "active", "one", approved),
			externalUser(ns, "waiting", "one", approved),
			externalUser(ns, "invited", "one"),
			externalUser(ns, "pending", "one"),
			externalUser(ns, "locked", "one", func(x *rosterv1.ExternalUser) { x.Spec.Access = rosterv1.ExternalAccessLocked }),
			externalUser(ns, "rejected", "one", func(x *rosterv1.ExternalUser) { x.Spec.Approval = rosterv1.ApprovalRejected }),
		} {
			Expect(adminClient.Create(ctx, x)).To(Succeed())
			if x.Name == "active" {
				waitXU(ctx, ns, "active", rosterv1.ExternalUserActive) // the oldest gets the one seat
			}
		}
		setXUStatus(ctx, waitXU(ctx, ns, "pending", rosterv1.ExternalUserInvited), `{"selfRegistered":true}`)
		for _, c := range []struct {
			name  string
			phase rosterv1.ExternalUserPhase
			want  status.Status
		}{
			{"active", rosterv1.ExternalUserActive, status.CurrentStatus},
			{"locked", rosterv1.ExternalUserLocked, status.CurrentStatus},
			{"rejected", rosterv1.ExternalUserRejected, status.CurrentStatus},
			{"invited", rosterv1.ExternalUserInvited, status.InProgressStatus},
			{"pending", rosterv1.ExternalUserPendingApproval, status.InProgressStatus},
			{"waiting", rosterv1.ExternalUserWaitingForSeat, status.InProgressStatus},
		} {
			expectStatus(ctx, waitXU(ctx, ns, c.name, c.phase), c.want, "")
		}
	})

	It("collaborations: Active and Removed (kept) are Current", func(ctx context.Context) {
		newOrganization(ctx, ns)
		active := collaboration(ns, "active", "active@kstatus.example", inModules(rosterv1.Module{Kind: "Project", Name: "p"}))
		kept := collaboration(ns, "kept", "kept@kstatus.example", inModules(rosterv1.Module{Kind: "Project", Name: "p"}),
			func(c *rosterv1.Collaboration) { c.Spec.CleanupPolicy = rosterv1.CleanupRetain })
		Expect(adminClient.Create(ctx, active)).To(Succeed())
		Expect(adminClient.Create(ctx, kept)).To(Succeed())
		expectStatus(ctx, waitCollaboration(ctx, active, rosterv1.CollaborationActive), status.CurrentStatus, "")
		waitCollaboration(ctx, kept, rosterv1.CollaborationActive)
		Expect(adminClient.Patch(ctx, kept, client.RawPatch("application/json-patch+json", []byte(`[{"op":"remove","path":"/spec/modules"}]`)))).To(Succeed())
		expectStatus(ctx, waitCollaboration(ctx, kept, rosterv1.CollaborationRemoved), status.CurrentStatus, "")
	})

	It("collaborations: PendingApproval waits for an admin, InProgress, as a member awaiting approval does", func(ctx context.Context) {
		newOrganization(ctx, ns)
		asked := collaboration(ns, "asked", "asked@kstatus.example", inModules(rosterv1.Module{Kind: "Project", Name: "p", Approval: rosterv1.ModulePending}))
		Expect(adminClient.Create(ctx, asked)).To(Succeed())
		expectStatus(ctx, waitCollaboration(ctx, asked, rosterv1.CollaborationPendingApproval), status.InProgressStatus, "until an admin approves")
		Expect(setSpec(ctx, adminClient, asked, `{"modules":[{"kind":"Project","name":"p","approval":"Approved"}]}`)).To(Succeed())
		expectStatus(ctx, waitCollaboration(ctx, asked, rosterv1.CollaborationActive), status.CurrentStatus, "")
	})

	It("organizations: Current when ready, Failed when the door number is taken", func(ctx context.Context) {
		org := newOrganization(ctx, ns, func(o *rosterv1.Organization) { o.Spec.DoorNumber = "44401234" })
		expectStatus(ctx, org, status.CurrentStatus, "")
		other := newNamespace(ctx)
		clash := &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: other}, Spec: rosterv1.OrganizationSpec{DisplayName: "Clash"}}
		Expect(k8sClient.Create(ctx, clash)).To(Succeed())
		expectStatus(ctx, clash, status.CurrentStatus, "")
		By("asking for a taken door number")
		Expect(setSpec(ctx, k8sClient, clash, `{"doorNumber":"44401234"}`)).To(MatchError(ContainSubstring("Duplicate value")),
			"the webhook refuses it while the holder has it")
	})
})
