package bulk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// ImportOptions change how Import treats the file.
type ImportOptions struct {
	// DryRun sends every invitation to the API server as a dry run: schema, admission and
	// name collisions are checked as for real, but nothing is stored. The admission webhooks
	// must declare sideEffects None or NoneOnDryRun for this to work. The daily import quota
	// is checked row by row against what is stored, so a dry run cannot tell which row of a
	// long file the quota would stop.
	DryRun bool
	// SkipInvalid imports the valid rows of a file that has invalid ones and reports the
	// invalid ones as Invalid, instead of refusing the whole file.
	SkipInvalid bool
	// Workers is how many rows are sent to the API server at once; 8 when 0.
	Workers int
	// Progress, when set, is called after each row with the rows done and the rows to do.
	Progress func(done, total int)
}

// ImportedInvitationName is the name Import gives the invitation of the person with this
// email or, without one, this phone in org. It depends on nothing else, so importing the
// same person again collides with the first invitation instead of inviting them twice.
// Emails compare case-insensitively, as everywhere else in Roster.
func ImportedInvitationName(org, email, phone string) string {
	key := "phone:" + phone
	if email != "" {
		key = "email:" + strings.ToLower(email)
	}
	sum := sha256.Sum256([]byte(org + "\x00" + key))
	return "imp-" + hex.EncodeToString(sum[:])[:12]
}

// Import creates one Invitation in namespace ns for every row of the CSV file r, inviting
// by Email when the row has an email and by Phone otherwise. The file is checked whole
// first: when any row is invalid it returns a *ValidationError naming every bad line and
// creates nothing, unless opts.SkipInvalid. A row the API server refuses is recorded as
// Failed with the server's message and the rest go on; a row whose person was imported
// before is Skipped. Rows go opts.Workers at a time. When the server's daily import quota
// refuses a row the import stops there (rows already under way may be refused too): the
// result's Stopped says so, and importing the same file again later goes on
// where it stopped. The error is for what stopped the import as a whole; the result then
// still tells which rows were done.
func Import(ctx context.Context, c client.Client, ns, org string, r io.Reader, opts ImportOptions) (ImportResult, error) {
	res := ImportResult{DryRun: opts.DryRun}
	if org == "" {
		return res, errors.New("an import needs the organization to invite into")
	}
	rows, invalid, err := parse(r)
	if err != nil {
		return res, err
	}
	if len(invalid) > 0 && !opts.SkipInvalid {
		return res, &ValidationError{Problems: invalid}
	}
	if err := checkOrganization(ctx, c, ns, org); err != nil {
		return res, err
	}
	// Rows imported before are told apart up front rather than by creating them again: the
	// admission webhook judges a create before storage finds the name taken, so a repeated
	// import on a day the quota is used up would otherwise fail rows that are long done.
	existing := map[string]*rosterv1.Invitation{}
	if err := listInvitations(ctx, c, ns, nil, func(inv *rosterv1.Invitation) { existing[inv.Name] = inv }); err != nil {
		return res, fmt.Errorf("listing invitations: %w", err)
	}
	rowResults, stopped, err := rowJob[importRow]{workers: opts.Workers, progress: opts.Progress,
		do: func(ctx context.Context, row importRow) (RowResult, *QuotaStop) {
			rr := importOne(ctx, c, ns, org, row, existing, opts.DryRun)
			if rr.Outcome == Failed {
				return rr, quotaStop(row.line, errors.New(rr.Message))
			}
			return rr, nil
		},
		// The quota refuses every new invitation until the day is over; rows imported before
		// are still told apart, the others are not sent.
		skip: func(row importRow) RowResult {
			name := ImportedInvitationName(org, row.email, row.phone)
			rr := RowResult{Line: row.line, Invitee: row.invitee(), Invitation: name, Outcome: Failed, Message: notTried}
			if inv, ok := existing[name]; ok {
				rr.Outcome, rr.Message = judgeExisting(inv, org, row)
			}
			return rr
		},
		interrupted: func(row importRow) RowResult {
			return RowResult{Line: row.line, Invitee: row.invitee(), Invitation: ImportedInvitationName(org, row.email, row.phone),
				Outcome: Failed, Message: interruptedMessage}
		},
	}.run(ctx, rows)
	res.Rows = append(invalidRows(invalid), rowResults...)
	sortRows(res.Rows)
	res.Stopped = stopped
	return res, err
}

// importOne creates one row's Invitation unless it is among the existing ones.
func importOne(ctx context.Context, c client.Client, ns, org string, row importRow,
	existing map[string]*rosterv1.Invitation, dryRun bool) RowResult {
	name := ImportedInvitationName(org, row.email, row.phone)
	res := RowResult{Line: row.line, Invitee: row.invitee(), Invitation: name}
	if inv, ok := existing[name]; ok {
		res.Outcome, res.Message = judgeExisting(inv, org, row)
		return res
	}
	method := rosterv1.InvitationMethodPhone
	if row.email != "" {
		method = rosterv1.InvitationMethodEmail
	}
	inv := &rosterv1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			// The label makes the admission webhook count the row against the inviter's daily
			// import quota (F6).
			Labels: map[string]string{rosterv1.LabelSource: rosterv1.SourceImport}},
		Spec: rosterv1.InvitationSpec{
			OrganizationRef: rosterv1.OrganizationReference{Name: org},
			Method:          method,
			Invitee:         rosterv1.Invitee{Name: row.name, Email: row.email, Phone: row.phone},
			WorkDetails: rosterv1.WorkDetails{Department: row.department, Position: row.position,
				WorkNumber: row.number, Location: row.location},
			Role: row.role,
		},
	}
	var opts []client.CreateOption
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	// The quota's ledger is written with optimistic concurrency, and parallel creates can
	// make the webhook give up with "try again"; so can a busy API server. Those are retried.
	err := retry.OnError(retry.DefaultBackoff, transient, func() error { return c.Create(ctx, inv.DeepCopy(), opts...) })
	switch {
	case err == nil:
		res.Outcome = Created
	case apierrors.IsAlreadyExists(err):
		// Created by someone else since the list.
		inv := &rosterv1.Invitation{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, inv); err != nil {
			res.Outcome, res.Message = Failed, fmt.Sprintf("Invitation %s already exists and could not be read: %v", name, err)
			break
		}
		res.Outcome, res.Message = judgeExisting(inv, org, row)
	default:
		res.Outcome, res.Message = Failed, err.Error()
	}
	return res
}

// judgeExisting tells a person imported before, which is fine, from an unrelated Invitation
// that happens to have the name, which is not: that row's person is not invited.
func judgeExisting(existing *rosterv1.Invitation, org string, row importRow) (Outcome, string) {
	s := existing.Spec
	same := s.OrganizationRef.Name == org &&
		((row.email != "" && strings.EqualFold(s.Invitee.Email, row.email)) ||
			(row.email == "" && s.Invitee.Email == "" && s.Invitee.Phone == row.phone))
	if !same {
		return Failed, fmt.Sprintf("Invitation %s already exists and invites someone else (%s); rename or delete it and import again",
			existing.Name, firstNonEmpty(s.Invitee.Email, s.Invitee.Phone, s.Invitee.Username, "nobody"))
	}
	msg := "already imported"
	if p := existing.Status.Phase; p != "" {
		msg += "; the invitation is " + string(p)
	}
	return Skipped, msg
}

func invalidRows(problems []RowError) []RowResult {
	byLine := map[int][]string{}
	var lines []int
	for _, p := range problems {
		if _, ok := byLine[p.Line]; !ok {
			lines = append(lines, p.Line)
		}
		msg := p.Message
		if p.Column != "" {
			msg = p.Column + ": " + msg
		}
		byLine[p.Line] = append(byLine[p.Line], msg)
	}
	rows := make([]RowResult, 0, len(lines))
	for _, l := range lines {
		rows = append(rows, RowResult{Line: l, Outcome: Invalid, Message: strings.Join(byLine[l], "; ")})
	}
	return rows
}

func sortRows(rows []RowResult) {
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Line < rows[j].Line })
}

// checkOrganization refuses to work on an organization that does not exist, which is most
// likely a typo: invitations into it would only fail later, one by one.
func checkOrganization(ctx context.Context, c client.Client, ns, org string) error {
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: org}, &rosterv1.Organization{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("there is no Organization %q in namespace %q", org, ns)
	}
	if err != nil {
		return fmt.Errorf("reading Organization %q: %w", org, err)
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
