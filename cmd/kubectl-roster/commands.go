package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/bulk"
)

// connectFunc returns a client and the namespace to work in. Tests replace the real one,
// which reads the kubeconfig and flags, with a fake.
type connectFunc func() (client.Client, string, error)

// app is what every command shares.
type app struct {
	streams genericiooptions.IOStreams
	connect connectFunc
}

// client connects and, for a dry run, wraps the client so every write is a server-side dry
// run: the API server checks it all and stores nothing.
func (a *app) client(dryRun bool) (client.Client, string, error) {
	c, ns, err := a.connect()
	if err != nil {
		return nil, "", err
	}
	if dryRun {
		c = client.NewDryRunClient(c)
	}
	return c, ns, nil
}

func newRootCommand(streams genericiooptions.IOStreams, connect connectFunc) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-roster",
		Short: "Import, export, find and change Roster members and external users in bulk",
		Long: `Import invitations from a CSV file, export members to one, and edit, approve, reject,
restore, terminate or re-invite many members at once. For an application's external users
and clients: import clients from the template or from Microsoft Entra, Okta or Google
Workspace files, export them, find them, and lock, unlock, unlink, delete, resend or relink
many at once.

Every command works in the namespace of the current context or -n, with your own permissions,
prints what it did to each row or object, and exits non-zero when anything failed.`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl roster"},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	a := &app{streams: streams, connect: connect}
	if connect == nil {
		flags := genericclioptions.NewConfigFlags(true)
		flags.AddFlags(root.PersistentFlags())
		a.connect = func() (client.Client, string, error) { return kubeClient(flags, streams.ErrOut) }
	}
	template, imp, export := templateCommand(a), importCommand(a), exportCommand(a)
	template.AddCommand(clientsTemplateCommand(a))
	imp.AddCommand(clientsImportCommand(a))
	export.AddCommand(clientsExportCommand(a))
	root.AddCommand(template, imp, export, editCommand(a), usersCommand(a))
	for _, op := range []struct {
		use, short string
		run        func(ctx context.Context, c client.Client, ns, org string, sel bulk.Selector) (bulk.EditResult, error)
	}{
		{"approve", "Approve members who wait for approval, or re-approve rejected ones", bulk.Approve},
		{"reject", "Reject members who wait for approval", bulk.Reject},
		{"restore", "Restore terminated members", bulk.Restore},
		{"terminate", "Remove members, keeping their records so they can be restored", bulk.Terminate},
	} {
		root.AddCommand(changeCommand(a, op.use, op.short, "members", op.run))
	}
	root.AddCommand(changeCommand(a, "resend", "Send invitations again, with a new link and expiry", "invitations", bulk.Resend))
	return root
}

// kubeClient connects the way kubectl does.
func kubeClient(flags *genericclioptions.ConfigFlags, warnings io.Writer) (client.Client, string, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, "", err
	}
	ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kubectl-roster"
	if cfg.QPS == 0 {
		// client-go's default of 5 requests a second would make a 10,000-row import take
		// half an hour, and even kubectl's 50 over three minutes. The API server's priority
		// and fairness protects it from a busy client; this only keeps a runaway loop polite.
		cfg.QPS, cfg.Burst = 500, 1000
	}
	// Server warnings (deprecations, admission warnings) are for the user, as in kubectl.
	cfg.WarningHandler = rest.NewWarningWriter(warnings, rest.WarningWriterOptions{Deduplicate: true})
	scheme := runtime.NewScheme()
	// Secrets, for the invitation links.
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	if err := rosterv1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

func templateCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "template [-o FILE]",
		Short: "Print the CSV import template",
		Long: `Print the CSV file to fill in for "kubectl roster import": the header and one example row.
Columns may come in any order; each row needs an email or a phone.`,
		Example: `  kubectl roster template -o people.csv`,
		Args:    cobra.NoArgs,
		RunE:    func(*cobra.Command, []string) error { return writeTemplate(a, output, bulk.Template()) },
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the template to this file instead of standard output")
	return cmd
}

// writeTemplate writes a CSV template to the file output, or to standard output.
func writeTemplate(a *app, output string, csv []byte) error {
	if output == "" {
		_, err := a.streams.Out.Write(csv)
		return err
	}
	return os.WriteFile(output, csv, 0o644)
}

func importCommand(a *app) *cobra.Command {
	var (
		file, org string
		opts      bulk.ImportOptions
	)
	cmd := &cobra.Command{
		Use:   "import -f FILE --org ORG [--dry-run=server] [--skip-invalid]",
		Short: "Invite everyone in a CSV file",
		Long: `Create one Invitation for every row of a CSV file made from "kubectl roster template": by
email when the row has one, else by text message.

The whole file is checked first. When any row is invalid nothing is imported and every bad
line is listed, unless --skip-invalid. Importing the same file again invites nobody twice:
people imported before are skipped.`,
		Example: `  kubectl roster import -f people.csv --org acme --dry-run=server
  kubectl roster import -f people.csv --org acme -n acme`,
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
			res, err := bulk.Import(cmd.Context(), c, ns, org, in, opts)
			return importReport(a.streams, res, err, commandLine(cmd, nil))
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", `the CSV file to import, "-" for standard input`)
	cmd.Flags().StringVar(&org, "org", "", "the Organization to invite into")
	addDryRunFlag(cmd.Flags(), &opts.DryRun)
	cmd.Flags().BoolVar(&opts.SkipInvalid, "skip-invalid", false, "import the valid rows even when some rows are invalid")
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagRequired("org")
	return cmd
}

// importReport prints what an import did, row by row, and a summary; explains a stop at the
// daily quota; and fails the command when any row did not go in.
func importReport(streams genericiooptions.IOStreams, res bulk.ImportResult, err error, again string) error {
	if len(res.Rows) > 0 {
		printImport(streams.Out, res)
	}
	if res.Stopped != nil {
		printQuotaStop(streams.Out, res, again)
	}
	if err != nil {
		return err
	}
	if len(res.Rows) == 0 {
		fmt.Fprintln(streams.ErrOut, "nothing to import: the file has no rows")
		return nil
	}
	if !res.OK() {
		return fmt.Errorf("%d of %d rows were not imported", len(res.With(bulk.Failed))+len(res.With(bulk.Invalid)), len(res.Rows))
	}
	return nil
}

func exportCommand(a *app) *cobra.Command {
	var (
		org, output, phase string
		opts               bulk.ExportOptions
	)
	cmd := &cobra.Command{
		Use:   "export --org ORG [--department DEPT] [--phase PHASE] [-o FILE]",
		Short: "Write an organization's members as CSV",
		Long: `Write the members of an organization as CSV, ordered by name, for a spreadsheet. Cells
that a spreadsheet would run as a formula are prefixed with an apostrophe.`,
		Example: `  kubectl roster export --org acme -o members.csv
  kubectl roster export --org acme --department Engineering --phase Active`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Phase = rosterv1.MemberPhase(phase)
			c, ns, err := a.client(false)
			if err != nil {
				return err
			}
			// Into memory first, so a failed export never leaves half a file behind.
			var buf bytes.Buffer
			if err := bulk.Export(cmd.Context(), c, ns, org, &buf, opts); err != nil {
				return err
			}
			if output == "" {
				_, err := a.streams.Out.Write(buf.Bytes())
				return err
			}
			// Member lists are personal data: readable by the exporting user only.
			if err := os.WriteFile(output, buf.Bytes(), 0o600); err != nil {
				return err
			}
			records, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
			if err != nil {
				return err
			}
			fmt.Fprintf(a.streams.ErrOut, "exported %d members to %s\n", len(records)-1, output)
			return nil
		},
	}
	cmd.Flags().StringVar(&org, "org", "", "the Organization whose members to export")
	cmd.Flags().StringVar(&opts.Department, "department", "", "export only this department (ignoring case)")
	cmd.Flags().StringVar(&phase, "phase", "", "export only members in this phase: Inactivated, Pending, Active, Rejected or Terminated")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	_ = cmd.MarkFlagRequired("org")
	return cmd
}

// selection holds the flags that choose objects, shared by every changing command.
type selection struct {
	org, labels, department string
	dryRun                  bool
}

func (s *selection) addFlags(cmd *cobra.Command, what string) {
	cmd.Flags().StringVar(&s.org, "org", "", "only "+what+" of this Organization")
	cmd.Flags().StringVarP(&s.labels, "selector", "l", "", "choose "+what+" by label selector, such as org.roster.dev/phase=Pending")
	cmd.Flags().StringVar(&s.department, "from-department", "", "choose "+what+" by their current department (ignoring case)")
	addDryRunFlag(cmd.Flags(), &s.dryRun)
}

// selector follows kubectl: names, or a selector, not both, and never nothing.
func (s *selection) selector(names []string) (bulk.Selector, error) {
	bySelector := s.labels != "" || s.department != ""
	switch {
	case len(names) > 0 && bySelector:
		return bulk.Selector{}, errors.New("give names or -l/--from-department, not both")
	case len(names) == 0 && !bySelector:
		return bulk.Selector{}, errors.New("give names, -l SELECTOR or --from-department DEPT to choose what to change")
	}
	return bulk.Selector{Names: names, LabelSelector: s.labels, Department: s.department}, nil
}

func editCommand(a *app) *cobra.Command {
	var (
		sel                            selection
		department, position, location string
	)
	cmd := &cobra.Command{
		Use:   "edit (NAME... | -l SELECTOR | --from-department DEPT) --org ORG [--department D] [--position P] [--location L]",
		Short: "Change the department, position or location of many members",
		Long: `Set the department, position or location of the chosen members. Only the details given
change; give one as "" to clear it.`,
		Example: `  kubectl roster edit --org acme --from-department "Sales EMEA" --department Sales --location Berlin
  kubectl roster edit --org acme bob carol --position Engineer`,
		RunE: func(cmd *cobra.Command, names []string) error {
			s, err := sel.selector(names)
			if err != nil {
				return err
			}
			var set bulk.WorkChanges
			if cmd.Flags().Changed("department") {
				set.Department = &department
			}
			if cmd.Flags().Changed("position") {
				set.Position = &position
			}
			if cmd.Flags().Changed("location") {
				set.Location = &location
			}
			c, ns, err := a.client(sel.dryRun)
			if err != nil {
				return err
			}
			res, err := bulk.Edit(cmd.Context(), c, ns, sel.org, s, set)
			return report(a.streams, "members", res, sel.dryRun, err)
		},
	}
	sel.addFlags(cmd, "members")
	cmd.Flags().StringVar(&department, "department", "", "the department to set")
	cmd.Flags().StringVar(&position, "position", "", "the position to set")
	cmd.Flags().StringVar(&location, "location", "", "the location to set")
	_ = cmd.MarkFlagRequired("org")
	return cmd
}
