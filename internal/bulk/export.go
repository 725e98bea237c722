package bulk

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// exportColumns are the columns of an export. name is the person's display name, as in the
// import template.
var exportColumns = []string{"name", "username", "email", "phone", "department", "position", "workNumber",
	"location", "role", "phase", "joined"}

var phases = []rosterv1.MemberPhase{rosterv1.MemberInactivated, rosterv1.MemberPending, rosterv1.MemberActive,
	rosterv1.MemberRejected, rosterv1.MemberTerminated}

// ExportOptions choose which members Export writes.
type ExportOptions struct {
	// Department exports only the members whose spec.department is this, ignoring case.
	// Empty exports every department.
	Department string
	// Phase exports only the members in this phase, ignoring case. Empty exports every phase.
	Phase rosterv1.MemberPhase
}

// Export writes the Members of org in namespace ns to w as CSV, one member a row, ordered by
// the name column (the display name, ignoring case) and then by object name, so that two
// exports of the same members are identical and read alphabetically in a spreadsheet.
// joined is when the person signed up, in RFC 3339 UTC, empty until they have.
func Export(ctx context.Context, c client.Client, ns, org string, w io.Writer, opts ExportOptions) error {
	if org == "" {
		return fmt.Errorf("an export needs the organization to export")
	}
	var phase rosterv1.MemberPhase
	if opts.Phase != "" {
		for _, p := range phases {
			if strings.EqualFold(string(p), string(opts.Phase)) {
				phase = p
			}
		}
		if phase == "" {
			return fmt.Errorf("unknown phase %q; the phases are Inactivated, Pending, Active, Rejected and Terminated", opts.Phase)
		}
	}
	if err := checkOrganization(ctx, c, ns, org); err != nil {
		return err
	}
	department := strings.TrimSpace(opts.Department)
	var members []rosterv1.Member
	err := listMembers(ctx, c, ns, nil, func(m *rosterv1.Member) {
		if m.Spec.OrganizationRef.Name == org &&
			(department == "" || strings.EqualFold(m.Spec.Department, department)) &&
			(phase == "" || m.Status.Phase == phase) {
			members = append(members, *m)
		}
	})
	if err != nil {
		return fmt.Errorf("listing members: %w", err)
	}
	sort.SliceStable(members, func(i, j int) bool {
		a, b := strings.ToLower(members[i].Spec.DisplayName), strings.ToLower(members[j].Spec.DisplayName)
		if a != b {
			return a < b
		}
		return members[i].Name < members[j].Name
	})

	cw := csv.NewWriter(w)
	if err := cw.Write(exportColumns); err != nil {
		return err
	}
	for i := range members {
		s, st := members[i].Spec, members[i].Status
		joined := ""
		if st.SignedUpAt != nil {
			joined = st.SignedUpAt.UTC().Format(time.RFC3339)
		}
		rec := []string{s.DisplayName, s.Username, s.Email, s.Phone, s.Department, s.Position, s.WorkNumber,
			s.Location, string(s.Role), string(st.Phase), joined}
		for j := range rec {
			rec[j] = safeCell(rec[j])
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// plainNumber is a cell that only holds digits and the punctuation of phone numbers. A
// spreadsheet may read it as arithmetic, but with no letters it can name no function, cell
// or program, so it is left alone: every E.164 phone starts with '+', and quoting them all
// would spoil the export for the common case.
var plainNumber = regexp.MustCompile(`^[+-]?[0-9][0-9 ()-]*$`)

// safeCell defuses CSV formula injection (CWE-1236): a member chooses their own name and a
// cell such as =HYPERLINK(...) would run as a formula in the admin's spreadsheet. A leading
// apostrophe makes spreadsheets show the text as it is. unsafeCell undoes it on import, so
// an export imports back to the same text.
func safeCell(s string) string {
	if needsQuote(s) {
		return "'" + s
	}
	return s
}

// needsQuote is a cell a spreadsheet would run, or one that already starts with the
// apostrophe safeCell adds, which gets one more so that unsafeCell can tell them apart.
func needsQuote(s string) bool {
	if s == "" || plainNumber.MatchString(s) {
		return false
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	case '\'':
		return needsQuote(s[1:])
	}
	return false
}

// unsafeCell takes off the apostrophe safeCell put in front of a cell.
func unsafeCell(s string) string {
	if strings.HasPrefix(s, "'") && needsQuote(s[1:]) {
		return s[1:]
	}
	return s
}
