package bulk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
)

// ClientImportOptions change how ImportClients treats the file.
type ClientImportOptions struct {
	// DryRun sends every change to the API server as a dry run: checked as for real, stored
	// never.
	DryRun bool
	// SkipInvalid imports the valid rows of a file that has invalid ones, and reports the
	// invalid ones, instead of refusing the whole file.
	SkipInvalid bool
	// UpdateExisting sets the name and title (role) of people who are already external
	// users of the application to the file's; without it they are left as they are.
	UpdateExisting bool
	// Workers is how many rows are sent to the API server at once; 8 when 0. Rows are
	// independent, and one at a time a large file takes minutes.
	Workers int
	// Progress, when set, is called after each row with the rows done and the rows to do.
	Progress func(done, total int)
}

// ImportedClientName is the name ImportClients gives the external user with this email or,
// without one, this phone in application app of org. It depends on nothing else, so a
// second import of the same person finds the first one's object instead of adding them
// twice.
func ImportedClientName(org, app, email, phone string) string {
	key := "phone:" + phone
	if email != "" {
		key = "email:" + strings.ToLower(email)
	}
	sum := sha256.Sum256([]byte(org + "\x00" + app + "\x00" + key))
	return "client-" + hex.EncodeToString(sum[:])[:12]
}

// QuotaStop is the server's daily import quota ending an import part way.
type QuotaStop struct {
	// Line is the first row the quota refused.
	Line int
	// Message is the API server's refusal.
	Message string
	// RetryAt is when the server said the next one is possible; zero when it did not say.
	RetryAt time.Time
}

// quotaRetryAt finds the time in the quota refusal (see membership.QuotaError).
var quotaRetryAt = regexp.MustCompile(`possible at (\S+)`)

// quotaStop recognises the API server's refusal of a create past the daily import quota.
func quotaStop(line int, err error) *QuotaStop {
	msg := err.Error()
	if !strings.Contains(msg, string(rosterv1.ReasonQuotaExceeded)+":") {
		return nil
	}
	q := &QuotaStop{Line: line, Message: msg}
	if m := quotaRetryAt.FindStringSubmatch(msg); m != nil {
		q.RetryAt, _ = time.Parse(time.RFC3339, strings.TrimRight(m[1], ".;,"))
	}
	return q
}

// notTried is the message of the rows an import did not send because the quota stopped it.
const notTried = "not imported: the daily import quota stopped the import before this row"

// ImportClients adds the people in a CSV file as external users of application app in org
// (F37): the client template's format, an export, or a file from Microsoft Entra, Okta or
// Google Workspace, told apart by the header. The file is checked whole first, the team
// emails included: when any row is invalid it returns a *ValidationError naming every bad
// line and creates nothing, unless opts.SkipInvalid. A person already in the application
// (the same email, or without one the same phone) is not added again; importing the same
// file twice creates nothing the second time. An empty org is the namespace's one
// Organization with application app. When the server's daily import quota refuses a row,
// the import stops there: the result's Stopped says so, the rows not sent are Failed with
// the message notTried, and importing the same file again later goes on where it stopped.
func ImportClients(ctx context.Context, c client.Client, ns, org, app string, r io.Reader, opts ClientImportOptions) (ImportResult, error) {
	res := ImportResult{DryRun: opts.DryRun}
	if app == "" {
		return res, errors.New("an import of clients needs the application to add them to")
	}
	file, err := readClients(r)
	if err != nil {
		return res, err
	}
	res.Format = file.format
	o, application, err := findApplication(ctx, c, ns, org, app)
	if err != nil {
		return res, err
	}
	members, err := membersByEmail(ctx, c, ns, o.Name)
	if err != nil {
		return res, err
	}
	rows := file.rows[:0:0]
	invalid := file.problems
	for _, row := range file.rows {
		if p := checkTeam(row, members, application); len(p) > 0 {
			invalid = append(invalid, p...)
			continue
		}
		rows = append(rows, row)
	}
	if len(invalid) > 0 && !opts.SkipInvalid {
		sortLines(invalid)
		return res, &ValidationError{Problems: invalid}
	}
	existing, err := indexClients(ctx, c, ns, o.Name, app)
	if err != nil {
		return res, err
	}

	in := clientImport{c: c, ns: ns, org: o.Name, app: app, members: members, existing: existing, has: file.has, opts: opts}
	results, stopped, err := rowJob[clientRow]{workers: opts.Workers, progress: opts.Progress, do: in.one, skip: in.skipIfDone,
		interrupted: func(row clientRow) RowResult {
			return RowResult{Line: row.line, Invitee: row.key(), Outcome: Failed, Message: interruptedMessage}
		}}.run(ctx, rows)
	res.Rows = append(invalidRows(invalid), results...)
	sortRows(res.Rows)
	res.Stopped = stopped
	return res, err
}

// clientImport is what every row of one import shares.
type clientImport struct {
	c            client.Client
	ns, org, app string
	members      map[string]*rosterv1.Member
	existing     clientIndex
	has          map[clientField]bool
	opts         ClientImportOptions
}

// one creates or updates one row's external user. It returns the quota's refusal when the
// quota refused the create.
func (in clientImport) one(ctx context.Context, row clientRow) (RowResult, *QuotaStop) {
	res := RowResult{Line: row.line, Invitee: row.key()}
	if x, why := in.existing.find(row, in.org, in.app); x != nil || why != "" {
		if why != "" {
			res.Outcome, res.Message = Failed, why
			return res, nil
		}
		res.Invitation = x.Name
		res.Outcome, res.Message = in.update(ctx, x, row)
		return res, nil
	}
	x := in.newClient(row)
	res.Invitation = x.Name
	var opts []client.CreateOption
	if in.opts.DryRun {
		opts = append(opts, client.DryRunAll)
	}
	// The quota's ledger is written with optimistic concurrency, and parallel creates can
	// make the webhook give up with "try again"; so can a busy API server. Those are retried.
	err := retry.OnError(retry.DefaultBackoff, transient, func() error { return in.c.Create(ctx, x.DeepCopy(), opts...) })
	switch {
	case err == nil:
		res.Outcome = Created
	case apierrors.IsAlreadyExists(err):
		// Added by someone else since the list: judge it like any existing one.
		fresh := &rosterv1.ExternalUser{}
		if err := in.c.Get(ctx, client.ObjectKeyFromObject(x), fresh); err != nil {
			res.Outcome, res.Message = Failed, fmt.Sprintf("ExternalUser %s already exists and could not be read: %v", x.Name, err)
			break
		}
		if why := sameClient(fresh, row, in.org, in.app); why != "" {
			res.Outcome, res.Message = Failed, why
			break
		}
		res.Outcome, res.Message = in.update(ctx, fresh, row)
	default:
		res.Outcome, res.Message = Failed, err.Error()
		if q := quotaStop(row.line, err); q != nil {
			return res, q
		}
	}
	return res, nil
}

// transient is an API server answer that the same request may not get a moment later.
func transient(err error) bool {
	return apierrors.IsInternalError(err) || apierrors.IsConflict(err) || apierrors.IsServerTimeout(err) ||
		apierrors.IsTooManyRequests(err) || apierrors.IsTimeout(err)
}

// skipIfDone is a row after the quota stopped the import: people already in are judged as
// usual, the rest are not sent.
func (in clientImport) skipIfDone(row clientRow) RowResult {
	if x, _ := in.existing.find(row, in.org, in.app); x != nil {
		return RowResult{Line: row.line, Invitee: row.key(), Invitation: x.Name, Outcome: Unchanged,
			Message: "already an external user of " + in.app}
	}
	return RowResult{Line: row.line, Invitee: row.key(), Outcome: Failed, Message: notTried}
}

func (in clientImport) newClient(row clientRow) *rosterv1.ExternalUser {
	x := &rosterv1.ExternalUser{
		ObjectMeta: metav1.ObjectMeta{Name: ImportedClientName(in.org, in.app, row.email, row.phone), Namespace: in.ns,
			// source=import counts the row against the daily import quota; application lets
			// `kubectl get xu -l` find the new user before the controller has labelled it.
			Labels: map[string]string{rosterv1.LabelSource: rosterv1.SourceImport, rosterv1.LabelApplication: in.app}},
		Spec: rosterv1.ExternalUserSpec{
			OrganizationRef: rosterv1.OrganizationReference{Name: in.org},
			Application:     in.app,
			DisplayName:     row.name,
			Email:           row.email,
			Phone:           row.phone,
			Company:         row.company,
			Title:           row.title,
			Team:            in.team(row),
		},
	}
	return x
}

// team turns the row's team emails into the Members' names, the first as lead.
func (in clientImport) team(row clientRow) []rosterv1.TeamMember {
	var team []rosterv1.TeamMember
	for i, email := range row.team {
		team = append(team, rosterv1.TeamMember{Member: in.members[strings.ToLower(email)].Name, Lead: i == 0})
	}
	return team
}

// update sets the name and title of an existing external user to the row's when asked to.
// The team, email, phone and company are left alone: they belong to the admins who look
// after the client, and to the person, once registered.
func (in clientImport) update(ctx context.Context, x *rosterv1.ExternalUser, row clientRow) (Outcome, string) {
	if !in.opts.UpdateExisting {
		return Unchanged, "already an external user of " + in.app
	}
	spec := map[string]any{}
	var changes []string
	if x.Spec.DisplayName != row.name {
		spec["displayName"] = row.name
		changes = append(changes, fmt.Sprintf("displayName %q → %q", x.Spec.DisplayName, row.name))
	}
	if in.has[fTitle] && x.Spec.Title != row.title {
		spec["title"] = row.title
		if row.title == "" {
			spec["title"] = nil
		}
		changes = append(changes, fmt.Sprintf("title %q → %q", x.Spec.Title, row.title))
	}
	if len(spec) == 0 {
		return Unchanged, "already has this name and title"
	}
	body, err := json.Marshal(map[string]any{"spec": spec})
	if err != nil {
		return Failed, err.Error()
	}
	var opts []client.PatchOption
	if in.opts.DryRun {
		opts = append(opts, client.DryRunAll)
	}
	if err := in.c.Patch(ctx, x.DeepCopy(), client.RawPatch(types.MergePatchType, body), opts...); err != nil {
		return Failed, err.Error()
	}
	return Updated, strings.Join(changes, ", ")
}

// clientIndex finds the external users of one application by email and phone, and every
// external user in the namespace by name.
type clientIndex struct {
	byEmail, byPhone, byName map[string]*rosterv1.ExternalUser
}

func indexClients(ctx context.Context, c client.Client, ns, org, app string) (clientIndex, error) {
	idx := clientIndex{byEmail: map[string]*rosterv1.ExternalUser{}, byPhone: map[string]*rosterv1.ExternalUser{},
		byName: map[string]*rosterv1.ExternalUser{}}
	err := listExternalUsers(ctx, c, ns, nil, func(x *rosterv1.ExternalUser) {
		idx.byName[x.Name] = x
		if x.Spec.OrganizationRef.Name != org || x.Spec.Application != app {
			return
		}
		if e := strings.ToLower(x.Spec.Email); e != "" {
			idx.byEmail[e] = x
		}
		if x.Spec.Phone != "" {
			idx.byPhone[x.Spec.Phone] = x
		}
	})
	if err != nil {
		return idx, fmt.Errorf("listing external users: %w", err)
	}
	return idx, nil
}

// find returns the application's external user for row, or why the row's name is taken
// by someone else.
func (idx clientIndex) find(row clientRow, org, app string) (*rosterv1.ExternalUser, string) {
	if row.email != "" {
		if x := idx.byEmail[strings.ToLower(row.email)]; x != nil {
			return x, ""
		}
	} else if x := idx.byPhone[row.phone]; x != nil {
		return x, ""
	}
	if x := idx.byName[ImportedClientName(org, app, row.email, row.phone)]; x != nil {
		if why := sameClient(x, row, org, app); why != "" {
			return nil, why
		}
		return x, ""
	}
	return nil, ""
}

// sameClient says why x, which has the name row's person would get, is someone else.
func sameClient(x *rosterv1.ExternalUser, row clientRow, org, app string) string {
	s := x.Spec
	if s.OrganizationRef.Name == org && s.Application == app &&
		((row.email != "" && strings.EqualFold(s.Email, row.email)) || (row.email == "" && s.Phone == row.phone)) {
		return ""
	}
	return fmt.Sprintf("ExternalUser %s already exists and is someone else (%s in %s); rename or delete it and import again",
		x.Name, firstNonEmpty(s.Email, s.Phone, s.DisplayName), s.Application)
}

// membersByEmail maps the lower-case email of every Member of org to the Member.
func membersByEmail(ctx context.Context, c client.Client, ns, org string) (map[string]*rosterv1.Member, error) {
	members := map[string]*rosterv1.Member{}
	err := listMembers(ctx, c, ns, nil, func(m *rosterv1.Member) {
		if m.Spec.OrganizationRef.Name == org && m.Spec.Email != "" {
			members[strings.ToLower(m.Spec.Email)] = m
		}
	})
	if err != nil {
		return nil, fmt.Errorf("listing members: %w", err)
	}
	return members, nil
}

// checkTeam checks a row's team against the organization's members, as the admission
// webhook will: every one an active member, and a team where the application requires one.
func checkTeam(row clientRow, members map[string]*rosterv1.Member, app *rosterv1.Application) []RowError {
	var problems []RowError
	if len(row.team) == 0 && app.RequireTeam {
		problems = append(problems, RowError{Line: row.line, Column: "team",
			Message: fmt.Sprintf("application %s requires a team: give the email of the member who serves this client", app.Name)})
	}
	for _, email := range row.team {
		m := members[strings.ToLower(email)]
		switch {
		case m == nil:
			problems = append(problems, RowError{Line: row.line, Column: "team",
				Message: fmt.Sprintf("%s is not the email of a member of the organization", email)})
		case !membership.Active(m):
			problems = append(problems, RowError{Line: row.line, Column: "team",
				Message: fmt.Sprintf("%s (Member %s) is not an active member: %s", email, m.Name, whyInactive(m))})
		}
	}
	return problems
}

// whyInactive says which part of membership.Active a member lacks.
func whyInactive(m *rosterv1.Member) string {
	switch {
	case m.Spec.Access == rosterv1.AccessTerminated:
		return "terminated"
	case m.Spec.Approval == rosterv1.ApprovalRejected:
		return "rejected"
	case m.Status.Phase == "":
		return "not signed up yet"
	case m.Status.Phase != rosterv1.MemberActive:
		return "phase " + string(m.Status.Phase)
	}
	return "their username is not confirmed yet"
}

func sortLines(p []RowError) {
	slices.SortStableFunc(p, func(a, b RowError) int { return a.Line - b.Line })
}

// findApplication returns the Organization in ns that has application app: org, or when
// org is empty the only one that has it.
func findApplication(ctx context.Context, c client.Client, ns, org, app string) (*rosterv1.Organization, *rosterv1.Application, error) {
	if org != "" {
		o := &rosterv1.Organization{}
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: org}, o)
		if apierrors.IsNotFound(err) {
			return nil, nil, fmt.Errorf("there is no Organization %q in namespace %q", org, ns)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading Organization %q: %w", org, err)
		}
		a := applicationOf(o, app)
		if a == nil {
			return nil, nil, fmt.Errorf("Organization %s has no application %q; its applications are %s", org, app, applicationNames(o))
		}
		return o, a, nil
	}
	list := &rosterv1.OrganizationList{}
	if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil, nil, fmt.Errorf("listing organizations: %w", err)
	}
	var found []*rosterv1.Organization
	for i := range list.Items {
		if applicationOf(&list.Items[i], app) != nil {
			found = append(found, &list.Items[i])
		}
	}
	switch len(found) {
	case 0:
		return nil, nil, fmt.Errorf("no Organization in namespace %q has an application %q", ns, app)
	case 1:
		return found[0], applicationOf(found[0], app), nil
	}
	return nil, nil, fmt.Errorf("several organizations in namespace %q have an application %q; choose one with --org", ns, app)
}

func applicationOf(o *rosterv1.Organization, name string) *rosterv1.Application {
	for i := range o.Spec.Applications {
		if o.Spec.Applications[i].Name == name {
			return &o.Spec.Applications[i]
		}
	}
	return nil
}

func applicationNames(o *rosterv1.Organization) string {
	var names []string
	for _, a := range o.Spec.Applications {
		names = append(names, a.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
