// Command kubectl-roster is a kubectl plugin for what Roster admins do to many people at once:
// import invitations from a CSV file, export members to one, and edit, approve, reject,
// restore, terminate or re-invite many members in one command; and for an application's
// external users, import clients from the files admins already have, export, find, and
// lock, unlink, delete, resend or relink them. Put the binary on the PATH
// and kubectl runs it as `kubectl roster`; it reads the kubeconfig and takes -n, --context
// and the other connection flags the way kubectl does, and acts with the user's own
// permissions.
//
// Every command prints what it did to each row or object and exits non-zero when anything
// failed, so it can be used in scripts.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

func main() {
	// The client logs nothing a CLI user needs; server warnings go to stderr on their own.
	logf.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	err := newRootCommand(streams, nil).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
