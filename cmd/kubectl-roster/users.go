package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/bulk"
)

// clientsTemplateCommand is `template clients`.
func clientsTemplateCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "clients [-o FILE]",
		Short: "Print the CSV template for importing clients",
		Long: `Print the CSV file to fill in for "kubectl roster import clients": the header and one
example row. team is the email of the member who serves the client; give several, separated
by spaces, and the first one leads. role becomes the client's title.`,
		Example: `  kubectl roster template clients -o clients.csv`,
		Args:    cobra.NoArgs,
		RunE:    func(*cobra.Command, []string) error { return writeTemplate(a, output, bulk.ClientTemplate()) },
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the template to this file instead of standard output")
	return cmd
}

// clientsImportCommand is `import clients`.
func clientsImportCommand(a *app) *cobra.Command {
	var (
		file, org, app string
		opts           bulk.ClientImportOptions
	)
	cmd := &cobra.Command{
		Use:   "clients -f FILE --application APP [--org ORG] [--update-existing] [--skip-invalid] [--dry-run=server]",
		Short: "Add the people in a CSV file as external users of an application",
		Long: `Add every row of a CSV file as an external user of an application. The file may be the
"kubectl roster template clients" template, an export ("kubectl roster export clients"), or
a file from Microsoft Entra (bulk invite), Okta (user import) or Google Workspace (user
upload): the format is told from the header. Files saved by a spreadsheet with a byte order
mark, CRLF line ends or ";" as the separator are read as they are.

The whole file is checked first, the team emails against the organization's active
members included. When any row is invalid nothing is imported and every bad line is listed
with the reason, unless --skip-invalid. People already in the application (the same email,
or without one the same phone) are not added again, so importing the same file twice
creates nothing the second time; --update-existing sets their name and title to the file's.

When the organization's daily import quota stops the import, the rows that went in are
listed, and running the same command again later imports the rest.`,
		Example: `  kubectl roster import clients -f clients.csv --application support-portal --dry-run=server
  kubectl roster import clients -f okta-users.csv --application support-portal --skip-invalid
  kubectl roster import clients -f clients.csv --application support-portal --update-existing`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, closeIn, err := openInput(file, a.streams.In)
			if err != nil {
				return err
			}
			defer closeIn()
			c, ns, err := a.client(false)
			if err != nil {
				return err
			}
			opts.Progress = newProgress(a.streams.ErrOut)
			res, err := bulk.ImportClients(cmd.Context(), c, ns, org, app, in, opts)
			if res.Format != "" && res.Format != bulk.FormatRoster {
				fmt.Fprintf(a.streams.ErrOut, "read as a %s file\n", res.Format)
			}
			return importReport(a.streams, res, err, commandLine(cmd, nil))
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", `the CSV file to import, "-" for standard input`)
	cmd.Flags().StringVar(&app, "application", "", "the application to add the clients to")
	cmd.Flags().StringVar(&org, "org", "", "the Organization of the application (needed only when several in the namespace have it)")
	cmd.Flags().BoolVar(&opts.UpdateExisting, "update-existing", false, "set the name and title of people who are already users of the application")
	cmd.Flags().BoolVar(&opts.SkipInvalid, "skip-invalid", false, "import the valid rows even when some rows are invalid")
	addDryRunFlag(cmd.Flags(), &opts.DryRun)
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagRequired("application")
	return cmd
}

// queryFlags are the flags that find external users.
type queryFlags struct {
	q                         bulk.UserQuery
	statuses                  []string
	signupAfter, signupBefore string
	loginAfter, loginBefore   string
	now                       func() time.Time
}

func (f *queryFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.q.Application, "application", "", "the application whose external users to find")
	fs.StringVar(&f.q.Organization, "org", "", "only external users of this Organization")
	fs.StringVarP(&f.q.LabelSelector, "selector", "l", "", "only users with these labels, such as org.roster.dev/seat=granted")
	fs.StringSliceVar(&f.statuses, "status", nil, "only users in these statuses: Invited, PendingApproval, Active, Locked, Rejected, WaitingForSeat")
	fs.StringVar(&f.q.Company, "company", "", "only users of this company (ignoring case)")
	fs.StringVar(&f.q.Search, "search", "", "only users whose name, email, phone, company, name or UID contain this text")
	fs.StringVar(&f.signupAfter, "signed-up-after", "", "only users who registered at or after this time (2026-01-31, RFC 3339, or 30d ago)")
	fs.StringVar(&f.signupBefore, "signed-up-before", "", "only users who registered before this time")
	fs.StringVar(&f.loginAfter, "login-after", "", "only users who last signed in at or after this time")
	fs.StringVar(&f.loginBefore, "login-before", "", "only users who have not signed in since this time (including those who never did)")
	fs.StringVar(&f.q.Sort, "sort", "name", "order by name, signup or login (oldest first; users without the time last)")
	_ = cmd.MarkFlagRequired("application")
}

// query turns the flags into a query.
func (f *queryFlags) query() (bulk.UserQuery, error) {
	q := f.q
	q.Statuses = f.statuses
	now := time.Now()
	if f.now != nil {
		now = f.now()
	}
	for _, t := range []struct {
		flag, value string
		into        *time.Time
	}{
		{"signed-up-after", f.signupAfter, &q.SignedUpAfter}, {"signed-up-before", f.signupBefore, &q.SignedUpBefore},
		{"login-after", f.loginAfter, &q.LoginAfter}, {"login-before", f.loginBefore, &q.LoginBefore},
	} {
		if t.value == "" {
			continue
		}
		v, err := parseWhen(t.value, now)
		if err != nil {
			return q, fmt.Errorf("--%s: %w", t.flag, err)
		}
		*t.into = v
	}
	return q, nil
}

// parseWhen reads a time as people give one on a command line: RFC 3339, a date (midnight
// UTC), or an age such as 30d or 12h, meaning that long ago.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 {
			return now.AddDate(0, 0, -days), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: give 2026-01-31, 2026-01-31T09:00:00Z, or an age such as 30d or 12h", s)
}

// usersCommand is `users`: find external users, and change them in bulk.
func usersCommand(a *app) *cobra.Command {
	var (
		qf     queryFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "users --application APP [filters] [--sort name|signup|login] [-o wide|json|yaml|csv|name]",
		Short: "Find an application's external users, and lock, unlock, unlink, delete or relink them",
		Long: `List the external users of an application that match every filter given. The API server
sends them in pages, so this works for applications of any size.

--search matches name, email, phone (however it is spaced), company, object name and UID.
External users have no license key, so there is none to search.`,
		Example: `  kubectl roster users --application support-portal --search partner.example
  kubectl roster users --application support-portal --company "Partner GmbH" --status Active --sort login
  kubectl roster users --application support-portal --login-before 90d -o csv > inactive.csv
  kubectl roster users --application support-portal --signed-up-after 2026-01-01 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := qf.query()
			if err != nil {
				return err
			}
			if !oneOf(output, "", "wide", "json", "yaml", "csv", "name") {
				return fmt.Errorf("-o is wide, json, yaml, csv or name, not %q", output)
			}
			c, ns, err := a.client(false)
			if err != nil {
				return err
			}
			users, err := bulk.FindUsers(cmd.Context(), c, ns, q)
			if err != nil {
				return err
			}
			if len(users) == 0 && output != "json" && output != "yaml" && output != "csv" {
				fmt.Fprintln(a.streams.ErrOut, "no external users matched")
				return nil
			}
			return printUsers(cmd.Context(), a, c, ns, users, output)
		},
	}
	qf.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "wide, json, yaml, csv (the export format) or name")
	for _, op := range []struct {
		use, short, long string
		run              func(context.Context, client.Client, string, string, bulk.UserSelector) (bulk.EditResult, error)
	}{
		{"delete", "Delete external users", "Delete the chosen external users. The same person's user in another application stays.", bulk.DeleteUsers},
		{"lock", "Keep external users out completely", "Set spec.access to Locked: the users cannot sign in until unlocked.", bulk.LockUsers},
		{"unlock", "Let locked external users sign in again", "Set spec.access to Enabled.", bulk.UnlockUsers},
		{"disable", "Disable external users (the same as lock)",
			"Set spec.access to Locked. External users have one switch for whether their record is in use, spec.access, so disable and lock are the same change.", bulk.LockUsers},
		{"enable", "Enable disabled external users (the same as unlock)", "Set spec.access to Enabled, the same change as unlock.", bulk.UnlockUsers},
		{"unlink", "Remove external users from their company", "Clear spec.company; the users stay users of the application.", bulk.UnlinkUsers},
		{"resend-confirmation", "Send the registration confirmation mail again",
			"Raise spec.resendConfirmationRequests by one; Roster sends the mail to each user's email.", bulk.ResendConfirmation},
		{"resend-welcome", "Send the welcome mail with the portal link again",
			"Raise spec.resendWelcomeRequests by one; Roster sends the mail to each user's email.", bulk.ResendWelcome},
		{"relink", "Make a new invitation link; the old one stops working",
			"Raise spec.invitation.linkGeneration by one. Roster makes a new link and the old one stops working; \"kubectl roster users link\" prints the new one.", bulk.Relink},
	} {
		cmd.AddCommand(userChangeCommand(a, op.use, op.short, op.long, op.run))
	}
	cmd.AddCommand(linkCommand(a))
	return cmd
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}

// userSelection holds the flags that choose external users to change.
type userSelection struct {
	org, app, labels string
	dryRun           bool
}

func (s *userSelection) addFlags(cmd *cobra.Command, dryRun bool) {
	cmd.Flags().StringVar(&s.app, "application", "", "only external users of this application")
	cmd.Flags().StringVar(&s.org, "org", "", "only external users of this Organization")
	cmd.Flags().StringVarP(&s.labels, "selector", "l", "", "choose users by label selector, such as org.roster.dev/company=Partner-GmbH")
	if dryRun {
		addDryRunFlag(cmd.Flags(), &s.dryRun)
	}
}

// selector follows kubectl: names, or a selector, not both, and never nothing.
func (s *userSelection) selector(names []string) (bulk.UserSelector, error) {
	switch {
	case len(names) > 0 && s.labels != "":
		return bulk.UserSelector{}, errors.New("give names or -l, not both")
	case len(names) == 0 && s.labels == "":
		return bulk.UserSelector{}, errors.New("give names or -l SELECTOR to choose the external users")
	}
	return bulk.UserSelector{Selector: bulk.Selector{Names: names, LabelSelector: s.labels}, Application: s.app}, nil
}

func userChangeCommand(a *app, use, short, long string,
	run func(context.Context, client.Client, string, string, bulk.UserSelector) (bulk.EditResult, error)) *cobra.Command {
	var sel userSelection
	cmd := &cobra.Command{
		Use:   use + " (NAME... | -l SELECTOR) [--application APP] [--org ORG] [--dry-run=server]",
		Short: short,
		Long:  long,
		Example: fmt.Sprintf("  kubectl roster users %s erin-support\n  kubectl roster users %s -l org.roster.dev/company=Partner-GmbH --application support-portal --dry-run=server",
			use, use),
		RunE: changeRunE(a, "external users", sel.selector, &sel.org, &sel.dryRun, run),
	}
	sel.addFlags(cmd, true)
	return cmd
}

func linkCommand(a *app) *cobra.Command {
	var sel userSelection
	cmd := &cobra.Command{
		Use:   "link (NAME... | -l SELECTOR) [--application APP] [--org ORG]",
		Short: "Print external users' current invitation links",
		Long: `Print each chosen external user's current invitation link, to copy to them, and when it
expires. A link is given only while it works: not after the user registered with it, nor
while a new one is being made. Links are bearer secrets: whoever has one can register.`,
		Example: `  kubectl roster users link erin-support
  kubectl roster users link -l org.roster.dev/phase=Invited --application support-portal`,
		RunE: func(cmd *cobra.Command, names []string) error {
			s, err := sel.selector(names)
			if err != nil {
				return err
			}
			c, ns, err := a.client(false)
			if err != nil {
				return err
			}
			links, err := bulk.Links(cmd.Context(), c, ns, sel.org, s)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.streams.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tLINK\tEXPIRES")
			failed := 0
			for _, l := range links {
				if l.URL == "" {
					failed++
					fmt.Fprintf(tw, "%s\t-\t%s\n", l.Name, oneLine(l.Problem))
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Name, l.URL, when(l.ExpiresAt))
			}
			_ = tw.Flush()
			if len(links) == 0 {
				fmt.Fprintln(a.streams.ErrOut, "no external users matched")
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d external users have no link to give", failed, len(links))
			}
			return nil
		},
	}
	sel.addFlags(cmd, false)
	return cmd
}

// clientsExportCommand is `export clients`.
func clientsExportCommand(a *app) *cobra.Command {
	var (
		qf     queryFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "clients --application APP [filters] [-o FILE]",
		Short: "Write an application's external users as CSV",
		Long: `Write the external users of an application as UTF-8 CSV with a header, in the format
"kubectl roster import clients" reads, so the file can be imported again. Cells that a
spreadsheet would run as a formula are prefixed with an apostrophe, which the import takes
off again. The filters are those of "kubectl roster users".`,
		Example: `  kubectl roster export clients --application support-portal -o clients.csv
  kubectl roster export clients --application support-portal --company "Partner GmbH"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := qf.query()
			if err != nil {
				return err
			}
			c, ns, err := a.client(false)
			if err != nil {
				return err
			}
			// Into memory first, so a failed export never leaves half a file behind.
			var buf bytes.Buffer
			if err := bulk.ExportUsers(cmd.Context(), c, ns, q, &buf); err != nil {
				return err
			}
			if output == "" {
				_, err := a.streams.Out.Write(buf.Bytes())
				return err
			}
			// Personal data: readable by the exporting user only.
			if err := os.WriteFile(output, buf.Bytes(), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(a.streams.ErrOut, "exported %d external users to %s\n", bytes.Count(buf.Bytes(), []byte("\n"))-1, output)
			return nil
		},
	}
	qf.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	return cmd
}

// printUsers writes users as the -o format asks.
func printUsers(ctx context.Context, a *app, c client.Client, ns string, users []rosterv1.ExternalUser, output string) error {
	out := a.streams.Out
	switch output {
	case "csv":
		return bulk.WriteUsers(ctx, c, ns, users, out)
	case "name":
		for _, x := range users {
			fmt.Fprintf(out, "externaluser.%s/%s\n", rosterv1.GroupVersion.Group, x.Name)
		}
		return nil
	case "json", "yaml":
		items := make([]rosterv1.ExternalUser, len(users))
		for i, x := range users {
			x.APIVersion, x.Kind = rosterv1.GroupVersion.String(), "ExternalUser"
			x.ManagedFields = nil
			items[i] = x
		}
		list := map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
		var b []byte
		var err error
		if output == "json" {
			b, err = json.MarshalIndent(list, "", "    ")
			b = append(b, '\n')
		} else {
			b, err = yaml.Marshal(list)
		}
		if err != nil {
			return err
		}
		_, err = out.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	header := "NAME\tDISPLAY NAME\tEMAIL\tPHONE\tCOMPANY\tSTATUS\tSIGNED UP\tLAST LOGIN"
	if output == "wide" {
		header += "\tTITLE\tACCESS\tORGANIZATION"
	}
	fmt.Fprintln(tw, header)
	for _, x := range users {
		s, st := x.Spec, x.Status
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", x.Name, s.DisplayName, dash(s.Email), dash(s.Phone), dash(s.Company),
			dash(string(st.Phase)), whenPtr(st.RegisteredAt), whenPtr(st.LastLoginAt))
		if output == "wide" {
			fmt.Fprintf(tw, "\t%s\t%s\t%s", dash(s.Title), dash(string(s.Access)), s.OrganizationRef.Name)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return oneLine(s)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

func whenPtr(t *metav1.Time) string {
	if t == nil {
		return "-"
	}
	return when(t.Time)
}
