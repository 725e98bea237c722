package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/roster-dev/roster/internal/bulk"
)

// plainProgressFrom is the smallest import that reports progress in plain lines; a smaller
// one is over before anyone would read them.
const plainProgressFrom = 100

// newProgress reports an import's progress on w: a progress bar when w is a terminal,
// otherwise a plain line at every tenth of the rows, which logs and CI keep readably.
func newProgress(w io.Writer) func(done, total int) {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		var bar *progressbar.ProgressBar
		return func(done, total int) {
			if bar == nil {
				bar = progressbar.NewOptions(total,
					progressbar.OptionSetWriter(w),
					progressbar.OptionSetDescription("importing"),
					progressbar.OptionShowCount(),
					progressbar.OptionShowIts(),
					progressbar.OptionSetItsString("rows"),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
				)
			}
			_ = bar.Set(done)
		}
	}
	step := 0
	return func(done, total int) {
		if total < plainProgressFrom {
			return
		}
		if step == 0 {
			step = max(total/10, 1)
		}
		if done%step == 0 || done == total {
			fmt.Fprintf(w, "imported %d of %d rows\n", done, total)
		}
	}
}

// printQuotaStop tells which rows went in before the daily quota stopped an import and
// how to import the rest without creating anything twice.
func printQuotaStop(w io.Writer, res bulk.ImportResult, again string) {
	q := res.Stopped
	var in, out []int
	for _, r := range res.Rows {
		switch r.Outcome {
		case bulk.Created, bulk.Skipped, bulk.Unchanged, bulk.Updated:
			in = append(in, r.Line)
		case bulk.Failed:
			if r.Line >= q.Line {
				out = append(out, r.Line)
			}
		}
	}
	fmt.Fprintf(w, "\nThe daily import quota stopped the import at line %d:\n  %s\n", q.Line, oneLine(q.Message))
	fmt.Fprintf(w, "In: %d rows (lines %s). Not imported: %d rows (lines %s).\n", len(in), lineRanges(in), len(out), lineRanges(out))
	when := "once the quota allows more"
	if !q.RetryAt.IsZero() {
		when = "after " + q.RetryAt.UTC().Format("2006-01-02 15:04 MST")
	}
	fmt.Fprintf(w, "To import the rest, run the same command again %s:\n  %s\n"+
		"Rows already in are recognised and not created twice. An admin of the organization can raise spec.importQuota.perUserPerDay instead.\n",
		when, again)
}

// lineRanges writes line numbers the way people read them: 2-40, 45, 47-50.
func lineRanges(lines []int) string {
	if len(lines) == 0 {
		return "none"
	}
	var parts []string
	for i := 0; i < len(lines); {
		j := i
		for j+1 < len(lines) && lines[j+1] == lines[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprint(lines[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", lines[i], lines[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// commandLine is the command as the user gave it, for "run the same command again".
func commandLine(cmd *cobra.Command, args []string) string {
	parts := strings.Fields(cmd.CommandPath())
	parts = append(parts, args...)
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch v := f.Value.(type) {
		case pflag.SliceValue:
			for _, e := range v.GetSlice() {
				parts = append(parts, "--"+f.Name+"="+shellQuote(e))
			}
		default:
			parts = append(parts, "--"+f.Name+"="+shellQuote(f.Value.String()))
		}
	})
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t'\"$\\;&|<>*?()[]{}`#~!") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
