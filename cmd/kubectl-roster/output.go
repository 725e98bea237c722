package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/roster-dev/roster/internal/bulk"
)

// changeCommand is a command that sets one thing on the chosen objects: approve, reject,
// restore, terminate, resend.
func changeCommand(a *app, use, short, what string,
	run func(context.Context, client.Client, string, string, bulk.Selector) (bulk.EditResult, error)) *cobra.Command {
	var sel selection
	cmd := &cobra.Command{
		Use:     use + " (NAME... | -l SELECTOR | --from-department DEPT) [--org ORG]",
		Short:   short,
		Example: fmt.Sprintf("  kubectl roster %s bob carol\n  kubectl roster %s -l org.roster.dev/department=Sales --org acme", use, use),
		RunE:    changeRunE(a, what, sel.selector, &sel.org, &sel.dryRun, run),
	}
	sel.addFlags(cmd, what)
	return cmd
}

// report prints what a change did to each object and a count, and fails the command when
// anything failed.
func report(streams genericiooptions.IOStreams, what string, res bulk.EditResult, dryRun bool, err error) error {
	if len(res.Objects) > 0 {
		tw := tabwriter.NewWriter(streams.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tRESULT\tDETAILS")
		for _, o := range res.Objects {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", o.Name, o.Outcome, oneLine(o.Message))
		}
		_ = tw.Flush()
		fmt.Fprintf(streams.Out, "%d %s: %s%s\n", len(res.Objects), what,
			counts(func(o bulk.Outcome) int { return len(res.With(o)) }, bulk.Changed, bulk.Unchanged, bulk.Failed), dryRunNote(dryRun))
	}
	if err != nil {
		return err
	}
	if len(res.Objects) == 0 {
		fmt.Fprintf(streams.ErrOut, "no %s matched\n", what)
		return nil
	}
	if n := len(res.With(bulk.Failed)); n > 0 {
		return fmt.Errorf("%d of %d %s failed", n, len(res.Objects), what)
	}
	return nil
}

func printImport(out io.Writer, res bulk.ImportResult) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if res.Format == "" {
		fmt.Fprintln(tw, "LINE\tINVITEE\tINVITATION\tRESULT\tDETAILS")
	} else {
		fmt.Fprintln(tw, "LINE\tCLIENT\tEXTERNAL USER\tRESULT\tDETAILS")
	}
	for _, r := range res.Rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.Line, r.Invitee, r.Invitation, r.Outcome, oneLine(r.Message))
	}
	_ = tw.Flush()
	outcomes := []bulk.Outcome{bulk.Created, bulk.Skipped, bulk.Failed, bulk.Invalid}
	if res.Format != "" {
		// A client import: people already there are unchanged or updated, not skipped.
		outcomes = []bulk.Outcome{bulk.Created, bulk.Updated, bulk.Unchanged, bulk.Failed, bulk.Invalid}
	}
	fmt.Fprintf(out, "%d rows: %s%s\n", len(res.Rows),
		counts(func(o bulk.Outcome) int { return len(res.With(o)) }, outcomes...), dryRunNote(res.DryRun))
}

// counts says "2 created, 1 failed", leaving out the outcomes nothing had, except the first.
func counts(n func(bulk.Outcome) int, outcomes ...bulk.Outcome) string {
	var parts []string
	for i, o := range outcomes {
		if c := n(o); c > 0 || i == 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c, o))
		}
	}
	return strings.Join(parts, ", ")
}

func dryRunNote(dryRun bool) string {
	if dryRun {
		return " (dry run: nothing was stored)"
	}
	return ""
}

// oneLine keeps a multi-line server message from breaking the table.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// openInput opens the file to read, "-" being standard input as in kubectl.
func openInput(name string, stdin io.Reader) (io.Reader, func(), error) {
	if name == "-" {
		return stdin, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { _ = f.Close() }, nil
}

// changeRunE is the RunE of a bulk change, for members and external users alike: it reads
// the selection of the command's flags, makes the client (one that only asks the API server
// with --dry-run=server), runs the change and prints one line per object.
func changeRunE[S any](a *app, what string, choose func(names []string) (S, error), org *string, dryRun *bool,
	run func(context.Context, client.Client, string, string, S) (bulk.EditResult, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, names []string) error {
		s, err := choose(names)
		if err != nil {
			return err
		}
		c, ns, err := a.client(*dryRun)
		if err != nil {
			return err
		}
		res, err := run(cmd.Context(), c, ns, *org, s)
		return report(a.streams, what, res, *dryRun, err)
	}
}
