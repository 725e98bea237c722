package main

import (
	"fmt"

	"github.com/spf13/pflag"
)

// dryRunFlag is kubectl's --dry-run for a plugin whose every change is judged by the API
// server: "server" (also given as a bare --dry-run) sends every write as a server-side dry
// run, so schema, admission and the webhooks' rules are checked as for real and nothing is
// stored. "client" is refused: a client cannot know what the webhooks would say.
type dryRunFlag bool

func addDryRunFlag(fs *pflag.FlagSet, p *bool) {
	f := fs.VarPF((*dryRunFlag)(p), "dry-run", "",
		`"server" (or a bare --dry-run): have the API server check every change without storing any; "none": make the changes`)
	f.NoOptDefVal = "server"
}

func (d *dryRunFlag) String() string {
	if *d {
		return "server"
	}
	return "none"
}

func (d *dryRunFlag) Set(s string) error {
	switch s {
	case "server", "true":
		*d = true
	case "none", "false":
		*d = false
	case "client":
		return fmt.Errorf(`only --dry-run=server is supported: the API server's admission webhooks decide what a change may do, and a client cannot check that`)
	default:
		return fmt.Errorf(`--dry-run is "server" or "none", not %q`, s)
	}
	return nil
}

func (d *dryRunFlag) Type() string { return "string" }
