package bulk_test

import (
	"bytes"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/bulk"
)

const exportHeader = "name,username,email,phone,department,position,workNumber,location,role,phase,joined\n"

var _ = Describe("F13 export members, all or one department", func() {
	var ns string
	acme := rosterv1.OrganizationReference{Name: "acme"}

	export := func(ctx SpecContext, opts bulk.ExportOptions) string {
		var b bytes.Buffer
		Expect(bulk.Export(ctx, bulkClient(), ns, "acme", &b, opts)).To(Succeed())
		return b.String()
	}

	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		newOrganization(ctx, ns, "acme")
		newOrganization(ctx, ns, "other")
		aliceJoined := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
		carolJoined := time.Date(2026, 3, 2, 10, 0, 0, 0, time.FixedZone("CEST", 2*60*60))
		// Created out of name order, so the export has to sort.
		newMember(ctx, ns, "m-carol", rosterv1.MemberSpec{OrganizationRef: acme, Username: "carol",
			DisplayName: `Carol, "CJ" Danvers`, Email: "carol@acme.example",
			WorkDetails: rosterv1.WorkDetails{Department: "Sales", Position: "Account Executive"}},
			rosterv1.MemberPending, &carolJoined)
		newMember(ctx, ns, "m-alice", rosterv1.MemberSpec{OrganizationRef: acme, Username: "alice",
			DisplayName: "Alice Liddell", Email: "alice@acme.example", Phone: "+4915111111111",
			WorkDetails: rosterv1.WorkDetails{Department: "Engineering", Position: "Engineer",
				WorkNumber: "+49 30 1234-101", Location: "Berlin"},
			Role: rosterv1.RoleAdmin}, rosterv1.MemberActive, &aliceJoined)
		newMember(ctx, ns, "m-bob", rosterv1.MemberSpec{OrganizationRef: acme, DisplayName: "Bob Builder",
			Email: "bob@acme.example", WorkDetails: rosterv1.WorkDetails{Department: "engineering"}},
			rosterv1.MemberInactivated, nil)
		newMember(ctx, ns, "m-zed", rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "other"},
			DisplayName: "Zed", Email: "zed@other.example", WorkDetails: rosterv1.WorkDetails{Department: "Engineering"}},
			rosterv1.MemberActive, nil)
	})

	It("writes every member of the organization, by name, escaped", func(ctx SpecContext) {
		Expect(export(ctx, bulk.ExportOptions{})).To(Equal(exportHeader +
			"Alice Liddell,alice,alice@acme.example,+4915111111111,Engineering,Engineer,+49 30 1234-101,Berlin,Admin,Active,2026-03-01T09:30:00Z\n" +
			"Bob Builder,,bob@acme.example,,engineering,,,,Member,Inactivated,\n" +
			`"Carol, ""CJ"" Danvers",carol,carol@acme.example,,Sales,Account Executive,,,Member,Pending,2026-03-02T08:00:00Z` + "\n"))
	})

	It("writes one department, whatever its case", func(ctx SpecContext) {
		Expect(export(ctx, bulk.ExportOptions{Department: "ENGINEERING"})).To(Equal(exportHeader +
			"Alice Liddell,alice,alice@acme.example,+4915111111111,Engineering,Engineer,+49 30 1234-101,Berlin,Admin,Active,2026-03-01T09:30:00Z\n" +
			"Bob Builder,,bob@acme.example,,engineering,,,,Member,Inactivated,\n"))
	})

	It("writes one phase", func(ctx SpecContext) {
		Expect(export(ctx, bulk.ExportOptions{Phase: "active"})).To(Equal(exportHeader +
			"Alice Liddell,alice,alice@acme.example,+4915111111111,Engineering,Engineer,+49 30 1234-101,Berlin,Admin,Active,2026-03-01T09:30:00Z\n"))
		Expect(export(ctx, bulk.ExportOptions{Department: "Sales", Phase: rosterv1.MemberActive})).To(Equal(exportHeader))
	})

	It("refuses a phase that does not exist", func(ctx SpecContext) {
		var b bytes.Buffer
		Expect(bulk.Export(ctx, bulkClient(), ns, "acme", &b, bulk.ExportOptions{Phase: "Approved"})).
			To(MatchError(ContainSubstring(`unknown phase "Approved"`)))
	})

	It("defuses cells a spreadsheet would run as formulas, but keeps phone numbers", func(ctx SpecContext) {
		newMember(ctx, ns, "m-mallory", rosterv1.MemberSpec{OrganizationRef: acme, Username: "mallory",
			DisplayName: `=HYPERLINK("http://evil.example","click")`, Email: "mallory@acme.example", Phone: "+4915122222222",
			WorkDetails: rosterv1.WorkDetails{Department: `-2+3+cmd|' /C calc'!A0`, Position: `+cmd|' /C calc'!A0`,
				WorkNumber: "+49 30 555-0", Location: "@SUM(1+1)"}},
			rosterv1.MemberActive, nil)
		Expect(export(ctx, bulk.ExportOptions{Department: `-2+3+cmd|' /C calc'!A0`})).To(Equal(exportHeader +
			`"'=HYPERLINK(""http://evil.example"",""click"")",mallory,mallory@acme.example,+4915122222222,` +
			`'-2+3+cmd|' /C calc'!A0,'+cmd|' /C calc'!A0,+49 30 555-0,'@SUM(1+1),Member,Active,` + "\n"))
	})
})
