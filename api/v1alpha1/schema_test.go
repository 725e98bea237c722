package v1alpha1_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// decode turns one YAML manifest into an object in namespace ns.
func decode(manifest, ns string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	Expect(yaml.Unmarshal([]byte(manifest), &u.Object)).To(Succeed(), manifest)
	u.SetNamespace(ns)
	return u
}

// roster builds a manifest of a Roster kind from its spec.
func roster(kind, spec string) string {
	return "apiVersion: org.roster.dev/v1alpha1\nkind: " + kind + "\nmetadata:\n  name: bad\nspec:\n" + indent(spec)
}

func indent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

const orgRef = "organizationRef: {name: acme}\n"

var _ = Describe("config/samples", func() {
	It("are all accepted by the API server", func(ctx context.Context) {
		ns := newNamespace(ctx)
		files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		kinds := map[string]bool{}
		for _, f := range files {
			if filepath.Base(f) == "kustomization.yaml" {
				continue
			}
			data, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			r := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
			for {
				u := &unstructured.Unstructured{}
				if err := r.Decode(&u.Object); errors.Is(err, io.EOF) {
					break
				} else {
					Expect(err).NotTo(HaveOccurred(), f)
				}
				if len(u.Object) == 0 {
					continue
				}
				u.SetNamespace(ns)
				Expect(k8sClient.Create(ctx, u)).To(Succeed(), "%s: %s", f, u.GetName())
				kinds[u.GetKind()] = true
			}
		}
		Expect(kinds).To(HaveKey("Organization"))
		Expect(kinds).To(HaveKey("Invitation"))
		Expect(kinds).To(HaveKey("Member"))
		Expect(kinds).To(HaveKey("ExternalUser"))
		Expect(kinds).To(HaveKey("Collaboration"))
	})
})

var _ = Describe("defaults", func() {
	It("fill in what the design promises", func(ctx context.Context) {
		ns := newNamespace(ctx)
		Expect(k8sClient.Create(ctx, decode(roster("Organization", "displayName: Acme"), ns))).To(Succeed())
		org := &rosterv1.Organization{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "bad"}, org)).To(Succeed())
		Expect(org.Spec.InvitationTTL.Duration.String()).To(Equal("168h0m0s"))
		Expect(org.Spec.Plan).To(Equal(rosterv1.PlanFree))
		Expect(org.Spec.JoinRules.ApprovalForNonAdminInvites).To(HaveValue(BeTrue()))

		Expect(k8sClient.Create(ctx, decode(roster("Member", orgRef), ns))).To(Succeed())
		mem := &rosterv1.Member{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "bad"}, mem)).To(Succeed())
		Expect(mem.Spec.Role).To(Equal(rosterv1.RoleMember))
		Expect(mem.Spec.Access).To(Equal(rosterv1.AccessActive))

		Expect(k8sClient.Create(ctx, decode(roster("Collaboration", orgRef+"collaborator: {displayName: F, email: f@x.example}"), ns))).To(Succeed())
		col := &rosterv1.Collaboration{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "bad"}, col)).To(Succeed())
		Expect(col.Spec.CleanupPolicy).To(Equal(rosterv1.CleanupDelete))

		Expect(k8sClient.Create(ctx, decode(roster("ExternalUser", orgRef+"application: crm\ndisplayName: E"), ns))).To(Succeed())
		xu := &rosterv1.ExternalUser{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "bad"}, xu)).To(Succeed())
		Expect(xu.Spec.Access).To(Equal(rosterv1.ExternalAccessEnabled))
	})
})

// Each bad manifest is refused with the message a user reads in kubectl's output.
var _ = DescribeTable("bad manifests are refused",
	func(ctx context.Context, manifest string, messages ...string) {
		ns := newNamespace(ctx)
		err := k8sClient.Create(ctx, decode(manifest, ns))
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "expected Invalid, got %v", err)
		for _, m := range messages {
			Expect(err.Error()).To(ContainSubstring(m))
		}
	},
	Entry("Organization without displayName",
		roster("Organization", "plan: Free"),
		`spec.displayName: Required value`),
	Entry("Organization with a door number that is not digits",
		roster("Organization", "displayName: A\ndoorNumber: 12ab56"),
		`spec.doorNumber: Invalid value: "12ab56": spec.doorNumber in body should match '^[0-9]{6,10}$'`),
	Entry("Organization with an invitation TTL under an hour",
		roster("Organization", "displayName: A\ninvitationTTL: 30m"),
		`spec.invitationTTL: Invalid value: "30m": invitationTTL must be between 1h and 720h`),
	Entry("Organization with an invitation TTL over 30 days",
		roster("Organization", "displayName: A\ninvitationTTL: 721h"),
		`invitationTTL must be between 1h and 720h`),
	Entry("Organization on an unknown plan",
		roster("Organization", "displayName: A\nplan: Gold"),
		`spec.plan: Unsupported value: "Gold": supported values: "Free", "Paid"`),
	Entry("Organization on the Free plan with an import quota over 100",
		roster("Organization", "displayName: A\nplan: Free\nimportQuota: {perUserPerDay: 500}"),
		`the Free plan allows at most 100 imports per user per day; set plan: Paid for more`),
	Entry("Organization with negative seats",
		roster("Organization", "displayName: A\napplications: [{name: crm, license: {seats: -1}}]"),
		`spec.applications[0].license.seats: Invalid value: -1: spec.applications[0].license.seats in body should be greater than or equal to 0`),
	Entry("Organization with two applications of the same name",
		roster("Organization", "displayName: A\napplications: [{name: crm}, {name: crm}]"),
		`spec.applications[1]: Duplicate value: {"name":"crm"}`),
	Entry("Organization asking joiners for an unknown field",
		roster("Organization", "displayName: A\njoinRules: {requiredFields: [age]}"),
		`spec.joinRules.requiredFields[0]: Unsupported value: "age"`),
	Entry("Organization admin that is neither User nor Group",
		roster("Organization", "displayName: A\nadmins: [{kind: Robot, name: r2d2}]"),
		`spec.admins[0].kind: Unsupported value: "Robot": supported values: "User", "Group"`),
	Entry("Organization with a portal URL that is not http(s)",
		roster("Organization", "displayName: A\nportalURL: ftp://join.acme.example"),
		`spec.portalURL: Invalid value: "ftp://join.acme.example"`),
	Entry("Organization email sender without an address",
		roster("Organization", "displayName: A\nnotifications: {email: {smtpSecretRef: {name: s}, from: Acme People}}"),
		`from must contain an email address`),
	Entry("Email invitation without an email",
		roster("Invitation", orgRef+"method: Email\ninvitee: {name: Bob}"),
		`spec: Invalid value: an Email invitation needs invitee.email`),
	Entry("Phone invitation without a phone",
		roster("Invitation", orgRef+"method: Phone\ninvitee: {email: bob@acme.example}"),
		`a Phone invitation needs invitee.phone`),
	Entry("Contact invitation without a username",
		roster("Invitation", orgRef+"method: Contact\ninvitee: {name: Bob}"),
		`a Contact invitation needs invitee.username`),
	Entry("Invitation with a malformed email",
		roster("Invitation", orgRef+"method: Email\ninvitee: {email: not-an-email}"),
		`spec.invitee.email: Invalid value: "not-an-email": spec.invitee.email in body must be of type email`),
	Entry("Invitation with a phone that is not E.164",
		roster("Invitation", orgRef+"method: Phone\ninvitee: {phone: 0151 1234567}"),
		`spec.invitee.phone: Invalid value: "0151 1234567": spec.invitee.phone in body should match '^\+[1-9][0-9]{6,14}$'`),
	Entry("Invitation by fax",
		roster("Invitation", orgRef+"method: Fax\ninvitee: {name: Bob}"),
		`spec.method: Unsupported value: "Fax": supported values: "Email", "Phone", "Link", "Contact"`),
	Entry("Invitation into an unknown role",
		roster("Invitation", orgRef+"method: Link\ninvitee: {name: Bob}\nrole: Owner"),
		`spec.role: Unsupported value: "Owner"`),
	Entry("Invitation without an organization",
		roster("Invitation", "method: Link\ninvitee: {name: Bob}"),
		`spec.organizationRef: Required value`),
	Entry("Invitation with a negative resend counter",
		roster("Invitation", orgRef+"method: Link\ninvitee: {name: Bob}\nresendRequests: -1"),
		`spec.resendRequests: Invalid value: -1: spec.resendRequests in body should be greater than or equal to 0`),
	Entry("Member with an unknown access",
		roster("Member", orgRef+"access: Paused"),
		`spec.access: Unsupported value: "Paused": supported values: "Active", "Terminated"`),
	Entry("Member with an unknown approval",
		roster("Member", orgRef+"approval: Maybe"),
		`spec.approval: Unsupported value: "Maybe": supported values: "", "Approved", "Rejected"`),
	Entry("ExternalUser without a name",
		roster("ExternalUser", orgRef+"application: crm"),
		`spec.displayName: Required value`),
	Entry("ExternalUser with two team leads",
		roster("ExternalUser", orgRef+"application: crm\ndisplayName: E\nteam: [{member: a, lead: true}, {member: b, lead: true}]"),
		`spec.team: Invalid value: a team has at most one lead`),
	Entry("ExternalUser with the same team member twice",
		roster("ExternalUser", orgRef+"application: crm\ndisplayName: E\nteam: [{member: a}, {member: a}]"),
		`spec.team[1]: Duplicate value: {"member":"a"}`),
	Entry("ExternalUser of an application name with capitals",
		roster("ExternalUser", orgRef+"application: CRM\ndisplayName: E"),
		`spec.application: Invalid value: "CRM"`),
	Entry("Collaboration in the same module twice",
		roster("Collaboration", orgRef+"collaborator: {displayName: F, email: f@x.example}\nmodules: [{kind: Task, name: t1}, {kind: Task, name: t1}]"),
		`spec.modules[1]: Duplicate value: {"kind":"Task","name":"t1"}`),
	Entry("Collaboration with no way to reach the collaborator",
		roster("Collaboration", orgRef+"collaborator: {displayName: F}"),
		`a collaborator needs an email or a phone so they can be told about their modules`),
	Entry("Collaboration in an unknown kind of module",
		roster("Collaboration", orgRef+"collaborator: {displayName: F, email: f@x.example}\nmodules: [{kind: Wiki, name: w}]"),
		`spec.modules[0].kind: Unsupported value: "Wiki": supported values: "Task", "Project", "File", "Group"`),
	Entry("Collaboration with an unknown cleanup policy",
		roster("Collaboration", orgRef+"collaborator: {displayName: F, email: f@x.example}\ncleanupPolicy: Archive"),
		`spec.cleanupPolicy: Unsupported value: "Archive": supported values: "Delete", "Retain"`),
)

// Transition rules: what may not change once an object exists.
var _ = Describe("transition rules", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	// update creates the manifest, applies mutate to the stored object and returns the
	// update's error.
	update := func(ctx context.Context, manifest string, mutate func(u *unstructured.Unstructured)) error {
		u := decode(manifest, ns)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		mutate(u)
		return k8sClient.Update(ctx, u)
	}
	set := func(u *unstructured.Unstructured, value any, path ...string) {
		Expect(unstructured.SetNestedField(u.Object, value, path...)).To(Succeed())
	}

	It("keeps organizationRef", func(ctx context.Context) {
		err := update(ctx, roster("Member", orgRef), func(u *unstructured.Unstructured) {
			set(u, "other", "spec", "organizationRef", "name")
		})
		Expect(err).To(MatchError(ContainSubstring(`spec.organizationRef: Invalid value: organizationRef cannot change`)))
	})

	It("lets resendRequests only grow", func(ctx context.Context) {
		inv := roster("Invitation", orgRef+"method: Link\ninvitee: {name: Bob}\nresendRequests: 2")
		err := update(ctx, inv, func(u *unstructured.Unstructured) { set(u, int64(1), "spec", "resendRequests") })
		Expect(err).To(MatchError(ContainSubstring(`resendRequests can only grow`)))
	})

	It("keeps invitedBy once set", func(ctx context.Context) {
		inv := roster("Invitation", orgRef+"method: Link\ninvitee: {name: Bob}\ninvitedBy: alice")
		err := update(ctx, inv, func(u *unstructured.Unstructured) { set(u, "mallory", "spec", "invitedBy") })
		Expect(err).To(MatchError(ContainSubstring(`invitedBy cannot change`)))
	})

	It("keeps an invitation's invitee and role", func(ctx context.Context) {
		inv := roster("Invitation", orgRef+"method: Email\ninvitee: {name: Bob, email: bob@acme.example}")
		err := update(ctx, inv, func(u *unstructured.Unstructured) { set(u, "eve@acme.example", "spec", "invitee", "email") })
		Expect(err).To(MatchError(ContainSubstring(`spec.invitee: Invalid value: invitee cannot change; delete this Invitation and create another`)))
		err = k8sClient.Patch(ctx, decode(inv, ns), client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"role":"Admin"}}`)))
		Expect(err).To(MatchError(ContainSubstring(`role cannot change; change the Member's spec.role instead`)))
	})

	It("keeps an external user's application", func(ctx context.Context) {
		err := update(ctx, roster("ExternalUser", orgRef+"application: crm\ndisplayName: E"), func(u *unstructured.Unstructured) {
			set(u, "erp", "spec", "application")
		})
		Expect(err).To(MatchError(ContainSubstring(`application cannot change`)))
	})

	Context("a team with a lead", func() {
		team := roster("ExternalUser", orgRef+"application: crm\ndisplayName: E\nteam: [{member: a, lead: true}, {member: b}]")

		It("refuses to lose its lead", func(ctx context.Context) {
			err := update(ctx, team, func(u *unstructured.Unstructured) {
				Expect(unstructured.SetNestedSlice(u.Object, []any{map[string]any{"member": "b"}}, "spec", "team")).To(Succeed())
			})
			Expect(err).To(MatchError(ContainSubstring(`the team lead cannot be removed until another member is made lead: in the same change, set lead: true on the team member who takes over`)))
		})

		It("refuses to drop the whole team", func(ctx context.Context) {
			err := update(ctx, team, func(u *unstructured.Unstructured) { unstructured.RemoveNestedField(u.Object, "spec", "team") })
			Expect(err).To(MatchError(ContainSubstring(`the team lead cannot be removed until another member is made lead`)))
		})

		It("lets the lead go once another member is lead", func(ctx context.Context) {
			err := update(ctx, team, func(u *unstructured.Unstructured) {
				Expect(unstructured.SetNestedSlice(u.Object, []any{map[string]any{"member": "b", "lead": true}}, "spec", "team")).To(Succeed())
			})
			Expect(err).NotTo(HaveOccurred())
		})
	})
})
