package bulk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/bulk"
)

// newPortalOrganization creates Organization acme with the application "support", whose
// license is active, and makes dana@acme.example an active member to serve clients.
func newPortalOrganization(ctx context.Context, ns string, requireTeam bool) {
	org := &rosterv1.Organization{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme"},
		Spec: rosterv1.OrganizationSpec{DisplayName: "Acme", Applications: []rosterv1.Application{{
			Name: "support", RequireTeam: requireTeam,
			License: rosterv1.License{Seats: 100000, ExpiresAt: &metav1.Time{Time: time.Now().Add(365 * 24 * time.Hour)}},
		}}},
	}
	Expect(k8sClient.Create(ctx, org)).To(Succeed())
	dana := newMember(ctx, ns, "dana", rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
		Username: "dana", DisplayName: "Dana Scully", Email: "dana@acme.example"}, rosterv1.MemberActive, nil)
	dana.Status.UsernameClaimed = true
	Expect(k8sClient.Status().Update(ctx, dana)).To(Succeed())
	newMember(ctx, ns, "fox", rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
		DisplayName: "Fox Mulder", Email: "fox@acme.example"}, rosterv1.MemberPending, nil)
}

func externalUsers(ctx context.Context, ns string) []rosterv1.ExternalUser {
	list := &rosterv1.ExternalUserList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
	return list.Items
}

func getExternalUser(ctx context.Context, ns, name string) *rosterv1.ExternalUser {
	x := &rosterv1.ExternalUser{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, x)).To(Succeed())
	return x
}

// clientsFile is n rows of the client template, row i (line i+2) being client i.
func clientsFile(n int, row func(i int) string) string {
	var b strings.Builder
	b.WriteString("firstName,lastName,email,phone,role,team\n")
	for i := range n {
		b.WriteString(row(i))
		b.WriteString("\n")
	}
	return b.String()
}

func goodClient(i int) string {
	return fmt.Sprintf("Client,Number %d,client%d@partner.example,+4915100%06d,Buyer,dana@acme.example", i, i, i)
}

func rowCounts(res bulk.ImportResult) map[bulk.Outcome]int {
	n := map[bulk.Outcome]int{}
	for _, r := range res.Rows {
		n[r.Outcome]++
	}
	return n
}

var _ = Describe("F37 client import", func() {
	var ns string

	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		newPortalOrganization(ctx, ns, true)
	})

	It("reports all 5 bad rows of 1,000, creates the other 995 once, and nothing on a re-run", func(ctx SpecContext) {
		bad := map[int]string{
			100: "Bad,Mail,not-an-email,,,dana@acme.example",
			200: "Bad,Phone,phone@partner.example,0151,,dana@acme.example",
			300: ",,noname@partner.example,,,dana@acme.example",
			400: "Bad,Team,team@partner.example,,,nobody@acme.example",
			500: "Pending,Team,pending@partner.example,,,fox@acme.example",
		}
		file := clientsFile(1000, func(i int) string {
			if row, ok := bad[i]; ok {
				return row
			}
			return goodClient(i)
		})

		_, err := bulk.ImportClients(ctx, bulkClient(), ns, "", "support", strings.NewReader(file), bulk.ClientImportOptions{})
		var verr *bulk.ValidationError
		Expect(errors.As(err, &verr)).To(BeTrue(), "error: %v", err)
		var got []string
		for _, p := range verr.Problems {
			got = append(got, p.String())
		}
		Expect(got).To(Equal([]string{
			`line 102: email: "not-an-email" is not an email address like name@example.com`,
			`line 202: phone: "0151" is not a phone number in international form like +4915112345678`,
			"line 302: name: needs a name: fill in firstName or lastName",
			"line 402: team: nobody@acme.example is not the email of a member of the organization",
			"line 502: team: fox@acme.example (Member fox) is not an active member: phase Pending",
		}))
		Expect(externalUsers(ctx, ns)).To(BeEmpty(), "a file with bad rows creates nothing")

		res, err := bulk.ImportClients(ctx, bulkClient(), ns, "", "support", strings.NewReader(file), bulk.ClientImportOptions{SkipInvalid: true})
		Expect(err).NotTo(HaveOccurred())
		Expect(rowCounts(res)).To(Equal(map[bulk.Outcome]int{bulk.Created: 995, bulk.Invalid: 5}))
		Expect(res.With(bulk.Invalid)[4].Line).To(Equal(502))
		users := externalUsers(ctx, ns)
		Expect(users).To(HaveLen(995))

		x := getExternalUser(ctx, ns, bulk.ImportedClientName("acme", "support", "client7@partner.example", ""))
		Expect(x.Spec).To(Equal(rosterv1.ExternalUserSpec{
			OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Application: "support",
			DisplayName: "Client Number 7", Email: "client7@partner.example", Phone: "+4915100000007", Title: "Buyer",
			Access: rosterv1.ExternalAccessEnabled, Team: []rosterv1.TeamMember{{Member: "dana", Lead: true}},
		}))
		Expect(x.Labels).To(HaveKeyWithValue(rosterv1.LabelSource, rosterv1.SourceImport))

		res, err = bulk.ImportClients(ctx, bulkClient(), ns, "", "support", strings.NewReader(file), bulk.ClientImportOptions{SkipInvalid: true})
		Expect(err).NotTo(HaveOccurred())
		Expect(rowCounts(res)).To(Equal(map[bulk.Outcome]int{bulk.Unchanged: 995, bulk.Invalid: 5}))
		after := externalUsers(ctx, ns)
		Expect(after).To(HaveLen(995))
		versions := map[string]string{}
		for _, x := range users {
			versions[x.Name] = x.ResourceVersion
		}
		for _, x := range after {
			Expect(x.ResourceVersion).To(Equal(versions[x.Name]), "%s was written again", x.Name)
		}
	})

	It("finds people added by hand by their email and updates names and titles only when asked", func(ctx SpecContext) {
		byHand := &rosterv1.ExternalUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erin"},
			Spec: rosterv1.ExternalUserSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Application: "support",
				DisplayName: "Erin H.", Email: "Erin@Partner.example", Company: "Partner GmbH", Title: "Buyer",
				Team: []rosterv1.TeamMember{{Member: "dana", Lead: true}}}}
		Expect(k8sClient.Create(ctx, byHand)).To(Succeed())
		file := "firstName,lastName,email,phone,role,team\nErin,Hannon,erin@partner.example,,Procurement,dana@acme.example\n"

		res, err := bulk.ImportClients(ctx, bulkClient(), ns, "acme", "support", strings.NewReader(file), bulk.ClientImportOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Rows).To(HaveLen(1))
		Expect(res.Rows[0].Outcome).To(Equal(bulk.Unchanged))
		Expect(res.Rows[0].Invitation).To(Equal("erin"))
		Expect(getExternalUser(ctx, ns, "erin").Spec.DisplayName).To(Equal("Erin H."))

		res, err = bulk.ImportClients(ctx, bulkClient(), ns, "acme", "support", strings.NewReader(file),
			bulk.ClientImportOptions{UpdateExisting: true, DryRun: true})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Rows[0].Outcome).To(Equal(bulk.Updated))
		Expect(getExternalUser(ctx, ns, "erin").Spec.DisplayName).To(Equal("Erin H."), "a dry run stores nothing")

		res, err = bulk.ImportClients(ctx, bulkClient(), ns, "acme", "support", strings.NewReader(file), bulk.ClientImportOptions{UpdateExisting: true})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Rows[0].Outcome).To(Equal(bulk.Updated))
		Expect(res.Rows[0].Message).To(Equal(`displayName "Erin H." → "Erin Hannon", title "Buyer" → "Procurement"`))
		x := getExternalUser(ctx, ns, "erin")
		Expect(x.Spec.DisplayName).To(Equal("Erin Hannon"))
		Expect(x.Spec.Title).To(Equal("Procurement"))
		Expect(x.Spec.Company).To(Equal("Partner GmbH"), "what the file does not set stays")
		Expect(externalUsers(ctx, ns)).To(HaveLen(1))
	})

	It("exports users that import back to the same objects", func(ctx SpecContext) {
		file := clientsFile(3, goodClient) +
			"\"=HYPERLINK(\"\"http://evil.example\"\")\",Mallory,mallory@partner.example,,-Boss,dana@acme.example\n"
		_, err := bulk.ImportClients(ctx, bulkClient(), ns, "", "support", strings.NewReader(file), bulk.ClientImportOptions{})
		Expect(err).NotTo(HaveOccurred())
		// Details the client file has no column for, set by hand afterwards.
		name := bulk.ImportedClientName("acme", "support", "client1@partner.example", "")
		Expect(k8sClient.Patch(ctx, getExternalUser(ctx, ns, name),
			client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"company":"Partner GmbH"}}`)))).To(Succeed())
		before := map[string]rosterv1.ExternalUserSpec{}
		for _, x := range externalUsers(ctx, ns) {
			before[x.Name] = x.Spec
		}

		var exported bytes.Buffer
		Expect(bulk.ExportUsers(ctx, bulkClient(), ns, bulk.UserQuery{Application: "support"}, &exported)).To(Succeed())
		Expect(exported.String()).To(HavePrefix("name,email,phone,role,company,team,status,signedUp,lastLogin,id\n"))
		Expect(exported.String()).To(ContainSubstring(`"'=HYPERLINK(""http://evil.example"") Mallory",mallory@partner.example,,'-Boss,,dana@acme.example`))

		for _, x := range externalUsers(ctx, ns) {
			Expect(k8sClient.Delete(ctx, &x)).To(Succeed())
		}
		Expect(externalUsers(ctx, ns)).To(BeEmpty())
		res, err := bulk.ImportClients(ctx, bulkClient(), ns, "", "support", bytes.NewReader(exported.Bytes()), bulk.ClientImportOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Format).To(Equal(bulk.FormatRoster))
		Expect(rowCounts(res)).To(Equal(map[bulk.Outcome]int{bulk.Created: 4}))
		after := map[string]rosterv1.ExternalUserSpec{}
		for _, x := range externalUsers(ctx, ns) {
			after[x.Name] = x.Spec
		}
		Expect(after).To(Equal(before))
	})

	It("imports each foreign format", func(ctx SpecContext) {
		Expect(k8sClient.Patch(ctx, &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme"}},
			client.RawPatch("application/json-patch+json", []byte(`[{"op":"replace","path":"/spec/applications/0/requireTeam","value":false}]`)))).To(Succeed())
		for _, tt := range []struct {
			file   string
			format bulk.Format
			erin   rosterv1.ExternalUserSpec
		}{
			{"entra.csv", bulk.FormatEntra, rosterv1.ExternalUserSpec{DisplayName: "erin@partner.example"}},
			{"entra-named.csv", bulk.FormatEntra, rosterv1.ExternalUserSpec{DisplayName: "Erin Hannon"}},
			{"okta.csv", bulk.FormatOkta, rosterv1.ExternalUserSpec{DisplayName: "Erin Hannon", Phone: "+4915112345678",
				Title: "Procurement", Company: "Partner GmbH"}},
			{"google.csv", bulk.FormatGoogle, rosterv1.ExternalUserSpec{DisplayName: "Erin Hannon", Phone: "+4915112345678", Title: "Procurement"}},
			{"excel-semicolon.csv", bulk.FormatRoster, rosterv1.ExternalUserSpec{DisplayName: "Erin Hannon", Phone: "+4915112345678",
				Title: "Procurement; Purchasing"}},
		} {
			By(tt.file)
			for _, x := range externalUsers(ctx, ns) {
				Expect(k8sClient.Delete(ctx, &x)).To(Succeed())
			}
			data, err := os.ReadFile(filepath.Join("testdata", "clients", tt.file))
			Expect(err).NotTo(HaveOccurred())
			res, err := bulk.ImportClients(ctx, bulkClient(), ns, "", "support", bytes.NewReader(data), bulk.ClientImportOptions{})
			Expect(err).NotTo(HaveOccurred(), tt.file)
			Expect(res.Format).To(Equal(tt.format))
			Expect(rowCounts(res)).To(Equal(map[bulk.Outcome]int{bulk.Created: 2}), tt.file)
			erin := getExternalUser(ctx, ns, bulk.ImportedClientName("acme", "support", "erin@partner.example", ""))
			want := tt.erin
			want.OrganizationRef, want.Application, want.Email, want.Access = rosterv1.OrganizationReference{Name: "acme"}, "support",
				"erin@partner.example", rosterv1.ExternalAccessEnabled
			Expect(erin.Spec).To(Equal(want), tt.file)
		}
	})

	It("stops at the daily quota, says which rows went in, and goes on without doubles the next day", func(ctx SpecContext) {
		// The quota refuses every import from the fourth row on, as Roster's webhook does once
		// the day's imports are used up.
		const refusal = "QuotaExceeded: alice created 3 invitations in the last 24 hours, the Free plan's limit of 3 a day; the next invitation is possible at 2030-01-02T03:04:05Z"
		undo := refuseCreates(ctx, ns, "externalusers",
			"!(object.spec.email in ['client3@partner.example', 'client4@partner.example', 'client5@partner.example'])",
			refusal, func() error {
				return k8sClient.Create(ctx, &rosterv1.ExternalUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"},
					Spec: rosterv1.ExternalUserSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Application: "support",
						DisplayName: "Probe", Email: "client3@partner.example"}}, client.DryRunAll)
			})
		file := clientsFile(6, goodClient)

		res, err := bulk.ImportClients(ctx, bulkClient(), ns, "", "support", strings.NewReader(file), bulk.ClientImportOptions{Workers: 1})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Stopped).NotTo(BeNil())
		Expect(res.Stopped.Line).To(Equal(5))
		Expect(res.Stopped.RetryAt).To(Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)))
		var got []string
		for _, r := range res.Rows {
			got = append(got, fmt.Sprintf("%d %s", r.Line, r.Outcome))
		}
		Expect(got).To(Equal([]string{"2 created", "3 created", "4 created", "5 failed", "6 failed", "7 failed"}))
		Expect(res.Rows[3].Message).To(ContainSubstring(refusal))
		Expect(res.Rows[4].Message).To(ContainSubstring("not imported"))
		Expect(externalUsers(ctx, ns)).To(HaveLen(3))

		// The next day.
		undo()
		res, err = bulk.ImportClients(ctx, bulkClient(), ns, "", "support", strings.NewReader(file), bulk.ClientImportOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Stopped).To(BeNil())
		Expect(rowCounts(res)).To(Equal(map[bulk.Outcome]int{bulk.Unchanged: 3, bulk.Created: 3}))
		Expect(externalUsers(ctx, ns)).To(HaveLen(6))
	})
})

// refuseCreates makes the API server refuse to create resource in ns where the CEL
// expression is false, with message, until the returned function is called. It returns
// once probe is refused, because the server loads policies asynchronously.
func refuseCreates(ctx context.Context, ns, resource, expression, message string, probe func() error) func() {
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "refuse-" + resource + "-"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
						Rule: admissionregistrationv1.Rule{APIGroups: []string{"org.roster.dev"},
							APIVersions: []string{"v1alpha1"}, Resources: []string{resource}},
					},
				}},
			},
			Validations: []admissionregistrationv1.Validation{{Expression: expression, Message: message}},
		},
	}
	Expect(k8sClient.Create(ctx, policy)).To(Succeed())
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "refuse-" + resource + "-"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}},
		},
	}
	Expect(k8sClient.Create(ctx, binding)).To(Succeed())
	var once sync.Once
	undo := func() {
		once.Do(func() {
			Expect(k8sClient.Delete(context.Background(), binding)).To(Succeed())
			Expect(k8sClient.Delete(context.Background(), policy)).To(Succeed())
			Eventually(probe).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
		})
	}
	DeferCleanup(undo)
	Eventually(probe).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(MatchError(ContainSubstring(message)))
	return undo
}
