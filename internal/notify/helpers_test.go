/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify_test

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/internal/notify"
	"github.com/roster-dev/roster/internal/notify/mailsink"
)

const (
	testLink     = "https://portal.example.com/invite?token=s3cr3t-t0ken&org=acme"
	testCode     = "739146"
	testPassword = "hunter2-Pa55word"
)

// testCtx bounds a test so a hang fails it instead of stalling the suite;
// it is a guard, never an assertion about speed.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startSink(t *testing.T, opts mailsink.Options) *mailsink.Server {
	t.Helper()
	s, err := mailsink.Start(opts)
	if err != nil {
		t.Fatalf("starting mail sink: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func invitation(key string) notify.Message {
	return notify.Message{
		Key:      key,
		Template: notify.TemplateInvitationEmail,
		To:       notify.Recipient{Name: "Jane Doe", Email: "jane@example.com", Phone: "+49 151 2345 6789"},
		Data: map[string]any{
			"OrganizationName": "Acme",
			"InviteeName":      "Jane Doe",
			"Link":             testLink,
			"ExpiresAt":        time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC),
		},
	}
}

// sendWhenFree sends as a controller does: when the dispatcher says the channel is busy, it
// comes back after the delay it was given.
func sendWhenFree(ctx context.Context, d *notify.Dispatcher, s notify.Settings, ch notify.Channel, msg notify.Message) error {
	for {
		err := d.Send(ctx, s, ch, msg)
		after, busy := notify.Busy(err)
		if !busy {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(after):
		}
	}
}

func newDispatcher(opts notify.DispatcherOptions) *notify.Dispatcher {
	if opts.SMTPTimeout == 0 {
		opts.SMTPTimeout = 10 * time.Second
	}
	if opts.Allow == nil {
		opts.Allow = notify.LoopbackOnly // the test servers listen there
	}
	return notify.NewDispatcher(opts)
}

// assertNoSecrets fails if err's text contains any of the secrets.
func assertNoSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error")
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains secret %q", err, s)
		}
	}
}

// bufioReader reads b through a bufio.Reader, as textproto needs.
func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
