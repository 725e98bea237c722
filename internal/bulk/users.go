package bulk

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// UserQuery chooses external users to list or export (F17, F33, F34). Every criterion
// given must hold.
type UserQuery struct {
	// Organization, when set, keeps only its external users.
	Organization string
	// Application keeps only the external users of this application; required.
	Application string
	// LabelSelector is a label selector in kubectl's syntax, applied by the API server.
	LabelSelector string
	// SignedUpAfter and SignedUpBefore bound status.registeredAt; a user who has not
	// registered matches neither.
	SignedUpAfter, SignedUpBefore time.Time
	// LoginAfter and LoginBefore bound status.lastLoginAt; a user who never signed in
	// matches LoginBefore (they have not signed in since) but not LoginAfter.
	LoginAfter, LoginBefore time.Time
	// Statuses keeps the users in one of these phases, ignoring case.
	Statuses []string
	// Company keeps the users of this company, ignoring case.
	Company string
	// Search keeps the users whose name, email, phone, company, object name or UID contain
	// it, ignoring case; a phone matches however it is spaced. ExternalUsers have no
	// license key to search.
	Search string
	// Sort orders by "name" (the default), "signup" or "login", oldest first; users
	// without the time come last. Ties go by object name.
	Sort string
}

// SortKeys are what UserQuery.Sort accepts.
var SortKeys = []string{"name", "signup", "login"}

var userPhases = []rosterv1.ExternalUserPhase{rosterv1.ExternalUserInvited, rosterv1.ExternalUserPendingApproval,
	rosterv1.ExternalUserActive, rosterv1.ExternalUserLocked, rosterv1.ExternalUserRejected, rosterv1.ExternalUserWaitingForSeat}

// FindUsers returns the external users q chooses, ordered as q asks. The API server sends
// them in pages, so an application of 100,000 users never comes in one response; only the
// matches are kept.
func FindUsers(ctx context.Context, c client.Client, ns string, q UserQuery) ([]rosterv1.ExternalUser, error) {
	if q.Application == "" {
		return nil, fmt.Errorf("choose the application whose external users to list")
	}
	match, err := q.matcher()
	if err != nil {
		return nil, err
	}
	ls := labels.Everything()
	if s := strings.TrimSpace(q.LabelSelector); s != "" {
		if ls, err = labels.Parse(s); err != nil {
			return nil, fmt.Errorf("label selector %q: %w", s, err)
		}
	}
	var found []rosterv1.ExternalUser
	if err := listExternalUsers(ctx, c, ns, ls, func(x *rosterv1.ExternalUser) {
		if match(x) {
			found = append(found, *x)
		}
	}); err != nil {
		return nil, fmt.Errorf("listing external users: %w", err)
	}
	sortUsers(found, q.Sort)
	return found, nil
}

// matcher checks q and returns its test for one user.
func (q UserQuery) matcher() (func(*rosterv1.ExternalUser) bool, error) {
	if q.Sort != "" && !slices.Contains(SortKeys, q.Sort) {
		return nil, fmt.Errorf("unknown sort %q; sort by %s", q.Sort, strings.Join(SortKeys, ", "))
	}
	var phases []rosterv1.ExternalUserPhase
	for _, s := range q.Statuses {
		s = strings.TrimSpace(s)
		i := slices.IndexFunc(userPhases, func(p rosterv1.ExternalUserPhase) bool { return strings.EqualFold(string(p), s) })
		if i < 0 {
			var names []string
			for _, p := range userPhases {
				names = append(names, string(p))
			}
			return nil, fmt.Errorf("unknown status %q; the statuses are %s", s, strings.Join(names, ", "))
		}
		phases = append(phases, userPhases[i])
	}
	company := strings.TrimSpace(q.Company)
	search := strings.ToLower(strings.TrimSpace(q.Search))
	searchDigits := digits(search)
	return func(x *rosterv1.ExternalUser) bool {
		s, st := x.Spec, x.Status
		switch {
		case s.Application != q.Application,
			q.Organization != "" && s.OrganizationRef.Name != q.Organization,
			len(phases) > 0 && !slices.Contains(phases, st.Phase),
			company != "" && !strings.EqualFold(s.Company, company),
			!within(st.RegisteredAt, q.SignedUpAfter, q.SignedUpBefore, false),
			!within(st.LastLoginAt, q.LoginAfter, q.LoginBefore, true):
			return false
		case search == "":
			return true
		}
		for _, v := range []string{s.DisplayName, s.Email, s.Phone, s.Company, x.Name, string(x.UID)} {
			if strings.Contains(strings.ToLower(v), search) {
				return true
			}
		}
		// "+49 151 123" finds +49151123...; a search with letters is no phone number.
		return searchDigits != "" && len(searchDigits) == len(strings.Map(keepPhoneChars, search)) &&
			strings.Contains(s.Phone, searchDigits)
	}, nil
}

func keepPhoneChars(r rune) rune {
	if strings.ContainsRune("0123456789", r) {
		return r
	}
	if strings.ContainsRune("+ -()./", r) {
		return -1
	}
	return r
}

func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// within tells whether t is in [after, before); zero bounds are open. A missing t is
// before every time, so it is within a bound only above when neverIsBefore.
func within(t *metav1.Time, after, before time.Time, neverIsBefore bool) bool {
	if t == nil {
		return after.IsZero() && (before.IsZero() || neverIsBefore)
	}
	return (after.IsZero() || !t.Time.Before(after)) && (before.IsZero() || t.Time.Before(before))
}

func timeOf(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func sortUsers(users []rosterv1.ExternalUser, by string) {
	key := func(x *rosterv1.ExternalUser) time.Time {
		switch by {
		case "signup":
			return timeOf(x.Status.RegisteredAt)
		case "login":
			return timeOf(x.Status.LastLoginAt)
		}
		return time.Time{}
	}
	slices.SortStableFunc(users, func(a, b rosterv1.ExternalUser) int {
		ta, tb := key(&a), key(&b)
		switch {
		case ta.IsZero() != tb.IsZero():
			if ta.IsZero() {
				return 1
			}
			return -1
		case !ta.Equal(tb):
			return ta.Compare(tb)
		}
		if by == "" || by == "name" {
			if c := strings.Compare(strings.ToLower(a.Spec.DisplayName), strings.ToLower(b.Spec.DisplayName)); c != 0 {
				return c
			}
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// ExportUsers writes the external users q chooses to w as CSV (F31): UTF-8 with a header,
// cells a spreadsheet would run defused, and in the format ImportClients reads, so that
// the file imports back to the same people. team lists the emails of the members who
// serve the person, the lead first.
func ExportUsers(ctx context.Context, c client.Client, ns string, q UserQuery, w io.Writer) error {
	users, err := FindUsers(ctx, c, ns, q)
	if err != nil {
		return err
	}
	return WriteUsers(ctx, c, ns, users, w)
}

// WriteUsers writes users to w in ExportUsers' format.
func WriteUsers(ctx context.Context, c client.Client, ns string, users []rosterv1.ExternalUser, w io.Writer) error {
	emails := map[string]string{}
	if err := listMembers(ctx, c, ns, nil, func(m *rosterv1.Member) {
		emails[m.Spec.OrganizationRef.Name+"/"+m.Name] = m.Spec.Email
	}); err != nil {
		return fmt.Errorf("listing members: %w", err)
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(clientExportColumns); err != nil {
		return err
	}
	for i := range users {
		x := &users[i]
		s, st := x.Spec, x.Status
		var team []string
		for _, lead := range []bool{true, false} {
			for _, t := range s.Team {
				if t.Lead == lead {
					// A member without an email is named as they are; the import then says
					// which row to fix.
					team = append(team, firstNonEmpty(emails[s.OrganizationRef.Name+"/"+t.Member], t.Member))
				}
			}
		}
		rec := []string{s.DisplayName, s.Email, s.Phone, s.Title, s.Company, strings.Join(team, " "),
			string(st.Phase), rfc3339(timeOf(st.RegisteredAt)), rfc3339(timeOf(st.LastLoginAt)), x.Name}
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

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// itoa keeps result messages short.
func itoa[T int32 | int64](n T) string { return strconv.FormatInt(int64(n), 10) }
