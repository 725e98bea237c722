/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"golang.org/x/time/rate"

	"github.com/roster-dev/roster/internal/notify"
)

func webhookKeys(t *testing.T, rec *recorder) []string {
	t.Helper()
	var keys []string
	for _, r := range rec.all() {
		var p notify.WebhookPayload
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, p.Key)
	}
	return keys
}

// TestRateLimitQueuesInOrder: a caller that comes back when told sends everything, in order.
func TestRateLimitQueuesInOrder(t *testing.T) {
	rec, srv := startRecorder(t, http.StatusOK)
	s := notify.Settings{Organization: "team-a/acme", Webhook: &notify.WebhookSettings{URL: srv.URL, SigningKey: []byte("k")}}
	// A bucket of one that refills quickly: every send after the first
	// has to wait for a token.
	d := newDispatcher(notify.DispatcherOptions{Limits: map[notify.Channel]notify.Limit{notify.ChannelWebhook: {Rate: 200, Burst: 1}}})
	var want []string
	for i := range 8 {
		key := fmt.Sprintf("uid-1/welcome/%d", i)
		want = append(want, key)
		msg := invitation(key)
		msg.Template = notify.TemplateWelcome
		if err := sendWhenFree(testCtx(t), d, s, notify.ChannelWebhook, msg); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if got := webhookKeys(t, rec); !slices.Equal(got, want) {
		t.Errorf("delivered %q, want %q", got, want)
	}
}

func TestRateLimitDropsNothingUnderConcurrency(t *testing.T) {
	rec, srv := startRecorder(t, http.StatusOK)
	s := notify.Settings{Organization: "team-a/acme", Webhook: &notify.WebhookSettings{URL: srv.URL, SigningKey: []byte("k")}}
	d := newDispatcher(notify.DispatcherOptions{Limits: map[notify.Channel]notify.Limit{notify.ChannelWebhook: {Rate: 200, Burst: 2}}})
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	var want []string
	for i := range n {
		key := fmt.Sprintf("uid-%02d/welcome/1", i)
		want = append(want, key)
		wg.Go(func() {
			errs <- sendWhenFree(testCtx(t), d, s, notify.ChannelWebhook, invitation(key))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got := webhookKeys(t, rec)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("delivered %q, want every one of %q", got, want)
	}
}

// TestRateLimitNeverBlocks: past the limit, Send returns at once saying when to come back,
// so a worker is never held by one organization's limit; nothing is sent meanwhile.
func TestRateLimitNeverBlocks(t *testing.T) {
	rec, srv := startRecorder(t, http.StatusOK)
	acme := notify.Settings{Organization: "team-a/acme", Webhook: &notify.WebhookSettings{URL: srv.URL, SigningKey: []byte("k")}}
	d := newDispatcher(notify.DispatcherOptions{Limits: map[notify.Channel]notify.Limit{notify.ChannelWebhook: {Rate: rate.Every(time.Hour), Burst: 1}}})
	if err := d.Send(testCtx(t), acme, notify.ChannelWebhook, invitation("k/1")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := d.Send(testCtx(t), acme, notify.ChannelWebhook, invitation("k/2"))
	after, busy := notify.Busy(err)
	if !busy || after < 59*time.Minute || notify.IsPermanent(err) {
		t.Errorf("Send past the limit = %v (busy %v, after %s), want busy for about an hour", err, busy, after)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("Send past the limit took %s; it must not wait", waited)
	}

	// The organization's own rate, from its settings, wins over the default.
	fast := acme
	fast.Limits = map[notify.Channel]notify.Limit{notify.ChannelWebhook: {Rate: 1000, Burst: 5}}
	if err := sendWhenFree(testCtx(t), d, fast, notify.ChannelWebhook, invitation("k/3")); err != nil {
		t.Errorf("with the organization's rate: %v", err)
	}

	// Another organization has its own bucket.
	other := acme
	other.Organization = "team-b/globex"
	if err := d.Send(testCtx(t), other, notify.ChannelWebhook, invitation("k/4")); err != nil {
		t.Errorf("other organization was throttled: %v", err)
	}
	// So does another channel of the same organization.
	if err := d.Send(testCtx(t), acme, notify.ChannelLog, invitation("k/5")); err != nil {
		t.Errorf("log channel was throttled: %v", err)
	}
	// Forget starts the organization over with a full bucket.
	d.Forget("team-a/acme")
	if err := d.Send(testCtx(t), acme, notify.ChannelWebhook, invitation("k/6")); err != nil {
		t.Errorf("send after Forget: %v", err)
	}
	if got, want := webhookKeys(t, rec), []string{"k/1", "k/3", "k/4", "k/6"}; !slices.Equal(got, want) {
		t.Errorf("delivered %q, want %q", got, want)
	}
}

func TestPermanentProblemsDoNotWaitForRateLimit(t *testing.T) {
	hourly := notify.Limit{Rate: rate.Every(time.Hour), Burst: 1}
	d := newDispatcher(notify.DispatcherOptions{Limits: map[notify.Channel]notify.Limit{notify.ChannelSMS: hourly, notify.ChannelEmail: hourly}})
	s := notify.Settings{
		SMS:   &notify.SMSSettings{URL: "http://127.0.0.1:1/"},
		Email: &notify.EmailSettings{Host: "127.0.0.1", Port: 1, TLS: notify.TLSModeNone, From: "noreply@roster.example"},
	}
	cases := []struct {
		ch notify.Channel
		to notify.Recipient
	}{
		{notify.ChannelSMS, notify.Recipient{}},
		{notify.ChannelSMS, notify.Recipient{Phone: "call me"}},
		{notify.ChannelEmail, notify.Recipient{}},
		{notify.ChannelEmail, notify.Recipient{Email: "jane at example.com"}},
	}
	// With a bucket of one per hour, the second call per channel would
	// block until the test's guard timeout if the check came after the
	// limiter.
	for _, tc := range cases {
		msg := invitation("k/1")
		msg.To = tc.to
		if err := d.Send(testCtx(t), s, tc.ch, msg); !notify.IsPermanent(err) {
			t.Fatalf("%s to %+v: Send = %v, want a permanent error", tc.ch, tc.to, err)
		}
	}
}

func TestSendValidatesInput(t *testing.T) {
	d := newDispatcher(notify.DispatcherOptions{})
	for name, msg := range map[string]notify.Message{
		"empty key":        {Template: notify.TemplateWelcome},
		"key with newline": {Key: "k/1\r\nBcc: x@example.com", Template: notify.TemplateWelcome},
		"unknown template": {Key: "k/1", Template: "nope"},
	} {
		if err := d.Send(testCtx(t), notify.Settings{}, notify.ChannelLog, msg); !notify.IsPermanent(err) {
			t.Errorf("%s: Send = %v, want a permanent error", name, err)
		}
	}
	if err := d.Send(testCtx(t), notify.Settings{}, "pigeon", invitation("k/1")); !notify.IsPermanent(err) {
		t.Errorf("unknown channel: Send = %v, want a permanent error", err)
	}
}

func TestLogChannelNeverLogsTheBody(t *testing.T) {
	var lines []string
	logger := funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{})
	d := newDispatcher(notify.DispatcherOptions{Logger: logger})
	s := notify.Settings{Organization: "team-a/acme", Templates: map[string]string{
		// A careless override that puts the link into the subject.
		"invitation-email.subject.tmpl": "Join {{.OrganizationName}}: {{.Link}}",
	}}
	msg := invitation("uid-1/invitation/1")
	msg.Data["Code"] = testCode
	if err := d.Send(testCtx(t), s, notify.ChannelLog, msg); err != nil {
		t.Fatal(err)
	}
	out := strings.Join(lines, "\n")
	for _, want := range []string{"Join Acme", "jane@example.com", "Jane Doe", "uid-1/invitation/1", "team-a/acme"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
	for _, secret := range []string{"s3cr3t-t0ken", testCode, "Accept the invitation"} {
		if strings.Contains(out, secret) {
			t.Errorf("log %q contains %q", out, secret)
		}
	}

	// LogNotifier is usable on its own, e.g. as the Notifier in tests.
	lines = nil
	var n notify.Notifier = notify.LogNotifier{Logger: logger}
	if err := n.Send(testCtx(t), notify.Settings{}, notify.ChannelEmail, invitation("k/2")); err != nil || len(lines) != 1 {
		t.Errorf("LogNotifier.Send = %v, %d lines", err, len(lines))
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 320 * time.Second, 10 * time.Minute, 10 * time.Minute}
	for attempt, w := range want {
		if got := notify.Backoff(attempt); got != w {
			t.Errorf("Backoff(%d) = %s, want %s", attempt, got, w)
		}
	}
	for _, attempt := range []int{-1, 62, 64, 1 << 30} {
		got := notify.Backoff(attempt)
		if got < notify.BackoffBase || got > notify.BackoffMax {
			t.Errorf("Backoff(%d) = %s, outside [%s, %s]", attempt, got, notify.BackoffBase, notify.BackoffMax)
		}
	}
}

func TestIsPermanent(t *testing.T) {
	for err, want := range map[error]bool{
		nil:                     false,
		errors.New("boom"):      false,
		context.Canceled:        false,
		notify.ErrNotConfigured: true,
		fmt.Errorf("wrapped: %w", notify.ErrNotConfigured): true,
		&notify.Error{Permanent: true}:                     true,
		fmt.Errorf("wrapped: %w", &notify.Error{}):         false,
	} {
		if got := notify.IsPermanent(err); got != want {
			t.Errorf("IsPermanent(%v) = %t, want %t", err, got, want)
		}
	}
}

// TestSlowServerHoldsFewWorkers: a server that takes a request and does not answer holds at
// most MaxInFlight sends of its organization; the next is told to come back, and another
// organization's sends go through meanwhile.
func TestSlowServerHoldsFewWorkers(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	rec, fast := startRecorder(t, http.StatusOK)
	d := newDispatcher(notify.DispatcherOptions{Limits: map[notify.Channel]notify.Limit{notify.ChannelWebhook: {Rate: rate.Inf, Burst: 1}}})
	stuck := notify.Settings{Organization: "a/slow", Webhook: &notify.WebhookSettings{URL: slow.URL, SigningKey: []byte("s")}}
	for i := range notify.MaxInFlight {
		go func() { _ = d.Send(testCtx(t), stuck, notify.ChannelWebhook, invitation(fmt.Sprintf("slow/%d", i))) }()
	}
	for deadline := time.Now().Add(10 * time.Second); arrived.Load() < notify.MaxInFlight; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sends reached the slow server", arrived.Load(), notify.MaxInFlight)
		}
	}
	err := d.Send(testCtx(t), stuck, notify.ChannelWebhook, invitation("slow/next"))
	if after, busy := notify.Busy(err); !busy || after <= 0 {
		t.Fatalf("a third send to the slow server = %v; want to be told to come back", err)
	}
	other := notify.Settings{Organization: "b/fast", Webhook: &notify.WebhookSettings{URL: fast.URL, SigningKey: []byte("f")}}
	if err := d.Send(testCtx(t), other, notify.ChannelWebhook, invitation("fast/1")); err != nil {
		t.Fatalf("another organization's send: %v", err)
	}
	if got := webhookKeys(t, rec); !slices.Equal(got, []string{"fast/1"}) {
		t.Errorf("delivered %q", got)
	}
}
