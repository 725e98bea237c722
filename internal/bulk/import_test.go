package bulk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/bulk"
)

// goodCSV has the columns in another order and case than the template, a byte order mark
// as Excel writes it, a quoted comma and a trailing row of empty cells.
const goodCSV = "\ufeffEmail,Name,PHONE,department,position,worknumber,location,Role\n" +
	"alice@acme.example,Alice Liddell,,Engineering,Engineer,+49 30 1234-101,Berlin,admin\n" +
	",Carol Danvers,+4915112345678,Sales,,,,\n" +
	"dave@acme.example,\"Dave, Jr.\",+4915112345679,Support,Agent,,Hamburg,AccountAdmin\n" +
	",,,,,,,\n"

func getInvitation(ctx context.Context, ns, name string) *rosterv1.Invitation {
	inv := &rosterv1.Invitation{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, inv)).To(Succeed())
	return inv
}

// lines is how the tests compare row results: line, outcome and invitation.
func lines(rows []bulk.RowResult) []string {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%d %s %s", r.Line, r.Outcome, r.Invitation))
	}
	return out
}

// refuseInvitations makes the API server refuse to create the Invitations in ns for which the
// CEL expression is false, with message, as Roster's admission webhook refuses an
// invitation for an existing member or past the import quota. It returns once the server
// refuses an invitation to probeEmail, because it loads policies asynchronously.
func refuseInvitations(ctx context.Context, ns, expression, message, probeEmail string) {
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "refuse-invitations-"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
						Rule: admissionregistrationv1.Rule{APIGroups: []string{"org.roster.dev"},
							APIVersions: []string{"v1alpha1"}, Resources: []string{"invitations"}},
					},
				}},
			},
			Validations: []admissionregistrationv1.Validation{{Expression: expression, Message: message}},
		},
	}
	Expect(k8sClient.Create(ctx, policy)).To(Succeed())
	DeferCleanup(func(ctx context.Context) { Expect(k8sClient.Delete(ctx, policy)).To(Succeed()) })
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "refuse-invitations-"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}},
		},
	}
	Expect(k8sClient.Create(ctx, binding)).To(Succeed())
	DeferCleanup(func(ctx context.Context) { Expect(k8sClient.Delete(ctx, binding)).To(Succeed()) })
	Eventually(func(g Gomega) {
		probe := &rosterv1.Invitation{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe",
				Labels: map[string]string{rosterv1.LabelSource: rosterv1.SourceImport}},
			Spec: rosterv1.InvitationSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
				Method: rosterv1.InvitationMethodEmail, Invitee: rosterv1.Invitee{Email: probeEmail}},
		}
		g.Expect(k8sClient.Create(ctx, probe, client.DryRunAll)).To(MatchError(ContainSubstring(message)))
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

var _ = Describe("F6 bulk import from a template", func() {
	var ns string

	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		newOrganization(ctx, ns, "acme")
	})

	It("imports the template's example row as it is", func(ctx SpecContext) {
		res, err := bulk.Import(ctx, bulkClient(), ns, "acme", bytes.NewReader(bulk.Template()), bulk.ImportOptions{})
		Expect(err).NotTo(HaveOccurred())
		name := bulk.ImportedInvitationName("acme", "bob@acme.example", "")
		Expect(lines(res.Rows)).To(Equal([]string{"2 created " + name}))

		inv := getInvitation(ctx, ns, name)
		Expect(inv.Spec.Method).To(Equal(rosterv1.InvitationMethodEmail))
		Expect(inv.Spec.Invitee).To(Equal(rosterv1.Invitee{Name: "Bob Builder", Email: "bob@acme.example"}))
		Expect(inv.Spec.WorkDetails).To(Equal(rosterv1.WorkDetails{Department: "Engineering",
			Position: "Site Reliability Engineer", WorkNumber: "+49 30 1234-100", Location: "Berlin"}))
		Expect(inv.Spec.Role).To(Equal(rosterv1.RoleMember))
	})

	It("creates one Invitation per row, by email or by phone, labelled as imported", func(ctx SpecContext) {
		res, err := bulk.Import(ctx, bulkClient(), ns, "acme", strings.NewReader(goodCSV), bulk.ImportOptions{})
		Expect(err).NotTo(HaveOccurred())
		alice := bulk.ImportedInvitationName("acme", "alice@acme.example", "")
		carol := bulk.ImportedInvitationName("acme", "", "+4915112345678")
		dave := bulk.ImportedInvitationName("acme", "dave@acme.example", "")
		Expect(lines(res.Rows)).To(Equal([]string{"2 created " + alice, "3 created " + carol, "4 created " + dave}))
		Expect(res.Rows[1].Invitee).To(Equal("+4915112345678"))
		Expect(res.OK()).To(BeTrue())
		Expect(invitations(ctx, ns)).To(HaveLen(3))

		org := rosterv1.OrganizationReference{Name: "acme"}
		want := map[string]rosterv1.InvitationSpec{
			alice: {OrganizationRef: org, Method: rosterv1.InvitationMethodEmail,
				Invitee: rosterv1.Invitee{Name: "Alice Liddell", Email: "alice@acme.example"},
				WorkDetails: rosterv1.WorkDetails{Department: "Engineering", Position: "Engineer",
					WorkNumber: "+49 30 1234-101", Location: "Berlin"},
				Role: rosterv1.RoleAdmin},
			// No role in the row: the schema's default applies.
			carol: {OrganizationRef: org, Method: rosterv1.InvitationMethodPhone,
				Invitee:     rosterv1.Invitee{Name: "Carol Danvers", Phone: "+4915112345678"},
				WorkDetails: rosterv1.WorkDetails{Department: "Sales"},
				Role:        rosterv1.RoleMember},
			dave: {OrganizationRef: org, Method: rosterv1.InvitationMethodEmail,
				Invitee:     rosterv1.Invitee{Name: "Dave, Jr.", Email: "dave@acme.example", Phone: "+4915112345679"},
				WorkDetails: rosterv1.WorkDetails{Department: "Support", Position: "Agent", Location: "Hamburg"},
				Role:        rosterv1.RoleAccountAdmin},
		}
		for name, spec := range want {
			inv := getInvitation(ctx, ns, name)
			Expect(inv.Spec).To(Equal(spec), name)
			Expect(inv.Labels).To(HaveKeyWithValue(rosterv1.LabelSource, rosterv1.SourceImport), name)
		}
	})

	It("creates nothing from a file with bad rows and names every bad line and why", func(ctx SpecContext) {
		csv := "name,email,phone,department,position,workNumber,location,role\n" + // 1
			"Good One,good@acme.example,,,,,,\n" + // 2
			"\"Multi\nLine\",not-an-email,,,,,,\n" + // 3-4: the row starts on line 3
			"No Contact,,,,,,,\n" + // 5
			"Bad Phone,,0151 1234,,,,,\n" + // 6
			"Bad Role,role@acme.example,,,,,,Boss\n" + // 7
			"Too,few,fields\n" + // 8
			"Dup,GOOD@acme.example,,,,,,\n" + // 9
			"Bad Number,num@acme.example,,,,call me,,\n" + // 10
			"Display Name,Bob <bob@acme.example>,,,,,,\n" + // 11
			"Long,long@acme.example,," + strings.Repeat("x", 129) + ",,,,\n" + // 12
			"Good Two,,+4915112345670,,,,,\n" // 13
		_, err := bulk.Import(ctx, bulkClient(), ns, "acme", strings.NewReader(csv), bulk.ImportOptions{})

		var verr *bulk.ValidationError
		Expect(errors.As(err, &verr)).To(BeTrue(), "error: %v", err)
		var got []string
		for _, p := range verr.Problems {
			got = append(got, fmt.Sprintf("%d %s", p.Line, p.Column))
		}
		Expect(got).To(Equal([]string{"3 email", "5 ", "6 phone", "7 role", "8 ", "9 email", "10 workNumber",
			"11 email", "12 department"}))
		Expect(err.Error()).To(And(
			ContainSubstring("problems on 9 lines; nothing was imported"),
			ContainSubstring(`line 3: email: "not-an-email" is not an email address`),
			ContainSubstring("line 5: needs an email or a phone"),
			ContainSubstring("line 8: has 3 fields, the header has 8"),
			ContainSubstring("line 9: email: GOOD@acme.example is already on line 2"),
			ContainSubstring("line 12: department: is 129 characters long, at most 128 are allowed"),
		))
		Expect(invitations(ctx, ns)).To(BeEmpty())
	})

	It("imports the good rows and reports the bad ones with SkipInvalid", func(ctx SpecContext) {
		csv := "name,email,phone,department,position,workNumber,location,role\n" +
			"Good One,good@acme.example,,,,,,\n" +
			"Bad,not-an-email,,,,,,Boss\n"
		res, err := bulk.Import(ctx, bulkClient(), ns, "acme", strings.NewReader(csv), bulk.ImportOptions{SkipInvalid: true})
		Expect(err).NotTo(HaveOccurred())
		Expect(lines(res.Rows)).To(Equal([]string{
			"2 created " + bulk.ImportedInvitationName("acme", "good@acme.example", ""),
			"3 invalid ",
		}))
		Expect(res.Rows[1].Message).To(And(ContainSubstring("email: "), ContainSubstring("; role: ")))
		Expect(res.OK()).To(BeFalse())
		Expect(invitations(ctx, ns)).To(HaveLen(1))
	})

	It("skips the people an earlier import already invited", func(ctx SpecContext) {
		_, err := bulk.Import(ctx, bulkClient(), ns, "acme", strings.NewReader(goodCSV), bulk.ImportOptions{})
		Expect(err).NotTo(HaveOccurred())
		before := map[string]string{}
		for _, inv := range invitations(ctx, ns) {
			before[inv.Name] = inv.ResourceVersion
		}

		// The same people again, one with the email in capitals and another department.
		again := "name,email,phone,department,position,workNumber,location,role\n" +
			"Alice Liddell,ALICE@acme.example,,Marketing,,,,\n" +
			"Carol Danvers,,+4915112345678,Sales,,,,\n"
		res, err := bulk.Import(ctx, bulkClient(), ns, "acme", strings.NewReader(again), bulk.ImportOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(lines(res.Rows)).To(Equal([]string{
			"2 skipped " + bulk.ImportedInvitationName("acme", "alice@acme.example", ""),
			"3 skipped " + bulk.ImportedInvitationName("acme", "", "+4915112345678"),
		}))
		Expect(res.Rows[0].Message).To(Equal("already imported"))
		Expect(res.OK()).To(BeTrue())

		after := map[string]string{}
		for _, inv := range invitations(ctx, ns) {
			after[inv.Name] = inv.ResourceVersion
		}
		Expect(after).To(Equal(before))
	})

	It("reports a row the API server refuses with the server's message and imports the rest", func(ctx SpecContext) {
		// The admission webhook refuses to invite an existing member; a
		// ValidatingAdmissionPolicy makes the same kind of refusal here.
		const refusal = "AlreadyMember: taken@acme.example is already a member (Member taken); there is nothing to invite"
		refuseInvitations(ctx, ns, "!has(object.spec.invitee.email) || object.spec.invitee.email != 'taken@acme.example'",
			refusal, "taken@acme.example")

		csv := "name,email,phone,department,position,workNumber,location,role\n" +
			"First,first@acme.example,,,,,,\n" +
			"Taken,taken@acme.example,,,,,,\n" +
			"Last,,+4915112345670,,,,,\n"
		// One row at a time, so that no row after the refusal is under way when it comes.
		res, err := bulk.Import(ctx, bulkClient(), ns, "acme", strings.NewReader(csv), bulk.ImportOptions{Workers: 1})
		Expect(err).NotTo(HaveOccurred())
		Expect(lines(res.Rows)).To(Equal([]string{
			"2 created " + bulk.ImportedInvitationName("acme", "first@acme.example", ""),
			"3 failed " + bulk.ImportedInvitationName("acme", "taken@acme.example", ""),
			"4 created " + bulk.ImportedInvitationName("acme", "", "+4915112345670"),
		}))
		Expect(res.Rows[1].Message).To(ContainSubstring(refusal))
		Expect(res.OK()).To(BeFalse())
		Expect(invitations(ctx, ns)).To(HaveLen(2))
	})

	It("skips rows imported before even when the server would refuse new ones", func(ctx SpecContext) {
		_, err := bulk.Import(ctx, bulkClient(), ns, "acme", strings.NewReader(goodCSV), bulk.ImportOptions{})
		Expect(err).NotTo(HaveOccurred())
		// The day's import quota is used up: the webhook refuses every imported invitation.
		const refusal = "QuotaExceeded: admin imported 3 invitations in the last 24 hours"
		refuseInvitations(ctx, ns, "!has(object.metadata.labels) || !('org.roster.dev/source' in object.metadata.labels)",
			refusal, "probe@acme.example")

		again := strings.TrimSuffix(goodCSV, ",,,,,,,\n") + "new@acme.example,New,,,,,,\n"
		res, err := bulk.Import(ctx, bulkClient(), ns, "acme", strings.NewReader(again), bulk.ImportOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(lines(res.Rows)).To(Equal([]string{
			"2 skipped " + bulk.ImportedInvitationName("acme", "alice@acme.example", ""),
			"3 skipped " + bulk.ImportedInvitationName("acme", "", "+4915112345678"),
			"4 skipped " + bulk.ImportedInvitationName("acme", "dave@acme.example", ""),
			"5 failed " + bulk.ImportedInvitationName("acme", "new@acme.example", ""),
		}))
		Expect(res.Rows[3].Message).To(ContainSubstring(refusal))
	})

	It("stops at the daily quota and does not send the rows after it", func(ctx SpecContext) {
		const refusal = "QuotaExceeded: admin created 1 invitations in the last 24 hours, the Free plan's limit of 1 a day; the next invitation is possible at 2030-01-02T03:04:05Z"
		refuseInvitations(ctx, ns, "!has(object.spec.invitee.email) || object.spec.invitee.email == 'first@acme.example'",
			refusal, "probe@acme.example")
		csv := "name,email,phone,department,position,workNumber,location,role\n" +
			"First,first@acme.example,,,,,,\n" +
			"Second,second@acme.example,,,,,,\n" +
			"Third,third@acme.example,,,,,,\n"
		// One row at a time, so that no row after the refusal is under way when it comes.
		res, err := bulk.Import(ctx, bulkClient(), ns, "acme", strings.NewReader(csv), bulk.ImportOptions{Workers: 1})
		Expect(err).NotTo(HaveOccurred())
		Expect(lines(res.Rows)).To(Equal([]string{
			"2 created " + bulk.ImportedInvitationName("acme", "first@acme.example", ""),
			"3 failed " + bulk.ImportedInvitationName("acme", "second@acme.example", ""),
			"4 failed " + bulk.ImportedInvitationName("acme", "third@acme.example", ""),
		}))
		Expect(res.Stopped).NotTo(BeNil())
		Expect(res.Stopped.Line).To(Equal(3))
		Expect(res.Stopped.RetryAt).To(Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)))
		Expect(res.Rows[1].Message).To(ContainSubstring(refusal))
		Expect(res.Rows[2].Message).To(ContainSubstring("not imported: the daily import quota stopped the import"))
		Expect(invitations(ctx, ns)).To(HaveLen(1))
	})

	It("skips a row whose invitation someone else created meanwhile", func(ctx SpecContext) {
		// Another import of the same file gets there between our list and our create.
		c := interceptor.NewClient(k8sClient, interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				Expect(c.Create(ctx, obj.DeepCopyObject().(client.Object))).To(Succeed())
				return c.Create(ctx, obj, opts...)
			},
		})
		res, err := bulk.Import(ctx, c, ns, "acme", bytes.NewReader(bulk.Template()), bulk.ImportOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(lines(res.Rows)).To(Equal([]string{"2 skipped " + bulk.ImportedInvitationName("acme", "bob@acme.example", "")}))
		Expect(invitations(ctx, ns)).To(HaveLen(1))
	})

	It("fails a row whose name is taken by an invitation for someone else", func(ctx SpecContext) {
		name := bulk.ImportedInvitationName("acme", "eve@acme.example", "")
		other := &rosterv1.Invitation{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: rosterv1.InvitationSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
				Method: rosterv1.InvitationMethodEmail, Invitee: rosterv1.Invitee{Email: "mallory@elsewhere.example"}},
		}
		Expect(k8sClient.Create(ctx, other)).To(Succeed())

		csv := "name,email,phone,department,position,workNumber,location,role\n" +
			"Eve,eve@acme.example,,,,,,\n" +
			"Frank,frank@acme.example,,,,,,\n"
		res, err := bulk.Import(ctx, bulkClient(), ns, "acme", strings.NewReader(csv), bulk.ImportOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(lines(res.Rows)).To(Equal([]string{
			"2 failed " + name,
			"3 created " + bulk.ImportedInvitationName("acme", "frank@acme.example", ""),
		}))
		Expect(res.Rows[0].Message).To(ContainSubstring("invites someone else (mallory@elsewhere.example)"))
		Expect(getInvitation(ctx, ns, name).Spec.Invitee.Email).To(Equal("mallory@elsewhere.example"))
	})

	It("stores nothing in a dry run but reports what would happen", func(ctx SpecContext) {
		res, err := bulk.Import(ctx, bulkClient(), ns, "acme", strings.NewReader(goodCSV), bulk.ImportOptions{DryRun: true})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.DryRun).To(BeTrue())
		Expect(res.With(bulk.Created)).To(HaveLen(3))
		Expect(invitations(ctx, ns)).To(BeEmpty())

		_, err = bulk.Import(ctx, bulkClient(), ns, "acme", bytes.NewReader(bulk.Template()), bulk.ImportOptions{})
		Expect(err).NotTo(HaveOccurred())
		res, err = bulk.Import(ctx, bulkClient(), ns, "acme", bytes.NewReader(bulk.Template()), bulk.ImportOptions{DryRun: true})
		Expect(err).NotTo(HaveOccurred())
		Expect(lines(res.Rows)).To(Equal([]string{"2 skipped " + bulk.ImportedInvitationName("acme", "bob@acme.example", "")}))
	})

	It("refuses an organization that does not exist before creating anything", func(ctx SpecContext) {
		_, err := bulk.Import(ctx, bulkClient(), ns, "acne", strings.NewReader(goodCSV), bulk.ImportOptions{})
		Expect(err).To(MatchError(ContainSubstring(`there is no Organization "acne"`)))
		Expect(invitations(ctx, ns)).To(BeEmpty())
	})
})
