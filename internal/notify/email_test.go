/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/roster-dev/roster/internal/notify"
	"github.com/roster-dev/roster/internal/notify/mailsink"
)

// testFrom is the organization's sender in these tests.
const testFrom = "Roster <noreply@roster.example>"

func emailSettings(t *testing.T, sink *mailsink.Server, extra map[string]string) *notify.EmailSettings {
	t.Helper()
	data := map[string][]byte{
		"host": []byte(sink.Host()),
		"port": []byte(strconv.Itoa(sink.Port())),
	}
	for k, v := range extra {
		data[k] = []byte(v)
	}
	s, err := notify.EmailSettingsFromSecret(data, testFrom)
	if err != nil {
		t.Fatalf("EmailSettingsFromSecret: %v", err)
	}
	return s
}

func TestEmailDeliversMultipartMessage(t *testing.T) {
	cases := []struct {
		name     string
		sink     mailsink.Options
		secret   func(*mailsink.Server) map[string]string
		wantTLS  bool
		wantUser string
	}{{
		name: "STARTTLS with AUTH PLAIN and a private CA",
		sink: mailsink.Options{TLS: mailsink.TLSStartTLS, Username: "mailer", Password: testPassword},
		secret: func(s *mailsink.Server) map[string]string {
			return map[string]string{"tls": "starttls", "username": "mailer", "password": testPassword, "caBundle": string(s.CertificatePEM())}
		},
		wantTLS:  true,
		wantUser: "mailer",
	}, {
		name: "implicit TLS",
		sink: mailsink.Options{TLS: mailsink.TLSImplicit, Username: "mailer", Password: testPassword},
		secret: func(*mailsink.Server) map[string]string {
			return map[string]string{"tls": "tls", "username": "mailer", "password": testPassword, "insecureSkipVerify": "true"}
		},
		wantTLS:  true,
		wantUser: "mailer",
	}, {
		name:   "plain text without auth",
		sink:   mailsink.Options{},
		secret: func(*mailsink.Server) map[string]string { return map[string]string{"tls": "none"} },
	}, {
		name: "plain text with auth on loopback",
		sink: mailsink.Options{Username: "mailer", Password: testPassword},
		secret: func(*mailsink.Server) map[string]string {
			return map[string]string{"tls": "none", "username": "mailer", "password": testPassword}
		},
		wantUser: "mailer",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			sink := startSink(t, tc.sink)
			s := notify.Settings{Organization: "team-a/acme", Email: emailSettings(t, sink, tc.secret(sink))}
			msg := invitation("uid-1/invitation/1")

			if err := newDispatcher(notify.DispatcherOptions{}).Send(ctx, s, notify.ChannelEmail, msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			mails, err := sink.WaitFor(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			m := mails[0]
			if m.From != "noreply@roster.example" || !slices.Equal(m.To, []string{"jane@example.com"}) {
				t.Errorf("envelope = %q -> %q", m.From, m.To)
			}
			if got := m.Header.Get("To"); !strings.Contains(got, "jane@example.com") || !strings.Contains(got, "Jane Doe") {
				t.Errorf("To header = %q", got)
			}
			if m.Subject != "You are invited to join Acme on Roster" {
				t.Errorf("Subject = %q", m.Subject)
			}
			if m.ContentType != "multipart/alternative" {
				t.Errorf("Content-Type = %q, want multipart/alternative", m.ContentType)
			}
			if m.Text == "" || m.HTML == "" {
				t.Fatalf("want text and HTML parts, got text=%q html=%q", m.Text, m.HTML)
			}
			if links := m.Links(); !slices.Contains(links, testLink) {
				t.Errorf("text part links = %q, want %q", links, testLink)
			}
			if !strings.Contains(m.HTML, `href="https://portal.example.com/invite?token=s3cr3t-t0ken&amp;org=acme"`) {
				t.Errorf("HTML part lacks the escaped link:\n%s", m.HTML)
			}
			if m.MessageID != notify.MessageID(msg.Key, testFrom) {
				t.Errorf("Message-ID = %q, want %q", m.MessageID, notify.MessageID(msg.Key, testFrom))
			}
			if got := m.Header.Get(notify.HeaderIdempotencyKeyEmail); got != msg.Key {
				t.Errorf("%s = %q, want %q", notify.HeaderIdempotencyKeyEmail, got, msg.Key)
			}
			if m.TLS != tc.wantTLS || m.AuthUser != tc.wantUser {
				t.Errorf("TLS=%t auth=%q, want TLS=%t auth=%q", m.TLS, m.AuthUser, tc.wantTLS, tc.wantUser)
			}
		})
	}
}

func TestEmailMessageIDIsDeterministic(t *testing.T) {
	ctx := testCtx(t)
	sink := startSink(t, mailsink.Options{})
	s := notify.Settings{Email: emailSettings(t, sink, map[string]string{"tls": "none"})}
	d := newDispatcher(notify.DispatcherOptions{})
	for _, key := range []string{"uid-1/invitation/1", "uid-1/invitation/1", "uid-1/invitation/2"} {
		if err := d.Send(ctx, s, notify.ChannelEmail, invitation(key)); err != nil {
			t.Fatalf("Send(%s): %v", key, err)
		}
	}
	mails, err := sink.WaitFor(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if mails[0].MessageID == "" || mails[0].MessageID != mails[1].MessageID {
		t.Errorf("same key gave Message-IDs %q and %q", mails[0].MessageID, mails[1].MessageID)
	}
	if mails[1].MessageID == mails[2].MessageID {
		t.Errorf("different keys gave the same Message-ID %q", mails[2].MessageID)
	}
	// The domain is the sender's, not Roster's: a Message-ID from a domain
	// unrelated to From counts against the mail in spam filters.
	if !strings.HasSuffix(mails[0].MessageID, "@roster.example>") || len(mails[0].MessageID) != len("<@roster.example>")+32 {
		t.Errorf("Message-ID %q is not <32 hex chars@roster.example>", mails[0].MessageID)
	}
}

func TestEmailFailures(t *testing.T) {
	cases := []struct {
		name      string
		sink      mailsink.Options
		secret    map[string]string
		prepare   func(*mailsink.Server)
		msg       func(notify.Message) notify.Message
		permanent bool
		code      int
	}{{
		name:      "rejected recipient",
		prepare:   func(s *mailsink.Server) { s.RejectRecipients("jane@example.com") },
		permanent: true,
		code:      550,
	}, {
		name:    "temporary failure",
		prepare: func(s *mailsink.Server) { s.FailTemporarily(true) },
		code:    451,
	}, {
		name:    "connection refused",
		prepare: func(s *mailsink.Server) { _ = s.Down() },
	}, {
		name:      "wrong password",
		sink:      mailsink.Options{Username: "mailer", Password: "the-right-one"},
		secret:    map[string]string{"username": "mailer", "password": testPassword},
		permanent: true,
		code:      535,
	}, {
		name:    "untrusted certificate",
		sink:    mailsink.Options{TLS: mailsink.TLSStartTLS},
		secret:  map[string]string{"tls": "starttls"},
		prepare: func(*mailsink.Server) {},
	}, {
		name:      "invalid recipient address",
		msg:       func(m notify.Message) notify.Message { m.To.Email = "not an address"; return m },
		permanent: true,
	}, {
		name:      "missing recipient address",
		msg:       func(m notify.Message) notify.Message { m.To.Email = ""; return m },
		permanent: true,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			sink := startSink(t, tc.sink)
			secret := tc.secret
			if secret == nil {
				secret = map[string]string{}
			}
			if _, ok := secret["tls"]; !ok {
				secret["tls"] = "none"
			}
			s := notify.Settings{Email: emailSettings(t, sink, secret)}
			if tc.prepare != nil {
				tc.prepare(sink)
			}
			msg := invitation("uid-1/invitation/1")
			if tc.msg != nil {
				msg = tc.msg(msg)
			}
			err := newDispatcher(notify.DispatcherOptions{}).Send(ctx, s, notify.ChannelEmail, msg)
			if err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			if got := notify.IsPermanent(err); got != tc.permanent {
				t.Errorf("IsPermanent(%q) = %t, want %t", err, got, tc.permanent)
			}
			var e *notify.Error
			if !errors.As(err, &e) || e.Channel != notify.ChannelEmail || e.Code != tc.code {
				t.Errorf("error %#v: want *notify.Error for email with code %d", err, tc.code)
			}
			assertNoSecrets(t, err, testPassword, testLink, "s3cr3t-t0ken")
			if strings.Contains(err.Error(), "Mailbox unavailable") {
				t.Errorf("the server's own words %q reach the error, and so status", err)
			}
			if tc.code == 550 && !strings.Contains(err.Error(), "550 5.1.1") {
				t.Errorf("error %q lacks the reply code and enhanced code", err)
			}
			if n := len(sink.Messages()); n != 0 {
				t.Errorf("sink received %d messages", n)
			}
		})
	}
}

func TestEmailChannelComesBack(t *testing.T) {
	ctx := testCtx(t)
	sink := startSink(t, mailsink.Options{})
	s := notify.Settings{Email: emailSettings(t, sink, map[string]string{"tls": "none"})}
	d := newDispatcher(notify.DispatcherOptions{})
	msg := invitation("uid-1/invitation/1")

	if err := sink.Down(); err != nil {
		t.Fatal(err)
	}
	err := d.Send(ctx, s, notify.ChannelEmail, msg)
	if err == nil || notify.IsPermanent(err) {
		t.Fatalf("Send while down = %v, want a transient error", err)
	}
	if err := sink.Up(); err != nil {
		t.Fatal(err)
	}
	sink.FailTemporarily(true)
	if err := d.Send(ctx, s, notify.ChannelEmail, msg); err == nil || notify.IsPermanent(err) {
		t.Fatalf("Send while failing = %v, want a transient error", err)
	}
	sink.FailTemporarily(false)
	if err := d.Send(ctx, s, notify.ChannelEmail, msg); err != nil {
		t.Fatalf("Send after recovery: %v", err)
	}
	if _, err := sink.WaitFor(ctx, 1); err != nil {
		t.Fatal(err)
	}
}

func TestEmailCancelledContext(t *testing.T) {
	sink := startSink(t, mailsink.Options{})
	s := notify.Settings{Email: emailSettings(t, sink, map[string]string{"tls": "none"})}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := newDispatcher(notify.DispatcherOptions{}).Send(ctx, s, notify.ChannelEmail, invitation("k/1"))
	if !errors.Is(err, context.Canceled) || notify.IsPermanent(err) {
		t.Fatalf("Send = %v, want transient context.Canceled", err)
	}
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("sink received %d messages", n)
	}
}

func TestNotConfigured(t *testing.T) {
	d := newDispatcher(notify.DispatcherOptions{})
	for _, ch := range []notify.Channel{notify.ChannelEmail, notify.ChannelSMS, notify.ChannelWebhook} {
		err := d.Send(testCtx(t), notify.Settings{}, ch, invitation("k/1"))
		if !errors.Is(err, notify.ErrNotConfigured) || !notify.IsPermanent(err) {
			t.Errorf("%s: Send = %v, want permanent ErrNotConfigured", ch, err)
		}
	}
}

func TestBrokenOverrideOnlyAffectsItsChannel(t *testing.T) {
	ctx := testCtx(t)
	sink := startSink(t, mailsink.Options{})
	s := notify.Settings{
		Email:     emailSettings(t, sink, map[string]string{"tls": "none"}),
		Templates: map[string]string{"invitation-email.sms.tmpl": "{{", "invitation-email.webhook.tmpl": "{{"},
	}
	if err := newDispatcher(notify.DispatcherOptions{}).Send(ctx, s, notify.ChannelEmail, invitation("k/1")); err != nil {
		t.Fatalf("email failed because of broken SMS/webhook overrides: %v", err)
	}
	s.Templates["invitation-email.txt.tmpl"] = "{{"
	err := newDispatcher(notify.DispatcherOptions{}).Send(ctx, s, notify.ChannelEmail, invitation("k/2"))
	if !notify.IsPermanent(err) || !strings.Contains(err.Error(), `"invitation-email.txt.tmpl"`) || !strings.HasPrefix(err.Error(), "email: ") {
		t.Fatalf("Send with a broken text override = %v, want a permanent email error naming the file", err)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("sink received %d messages, want 1", n)
	}
}

func TestMessageIDTakesTheSendersDomain(t *testing.T) {
	const key = "uid-1/invitation/1"
	cases := []struct{ sender, domain string }{
		{"people@acme.example", "acme.example"},
		{"Acme People <people@Mail.ACME.example>", "mail.acme.example"},
		{`"Acme, Inc." <people@acme.example>`, "acme.example"},
		// No plain ASCII domain: Roster's own stands in.
		{"people@bücher.example", notify.MessageIDDomain},
		{"people@[192.0.2.1]", notify.MessageIDDomain},
		{"not an address", notify.MessageIDDomain},
	}
	for _, tc := range cases {
		got := notify.MessageID(key, tc.sender)
		if !strings.HasPrefix(got, "<") || !strings.HasSuffix(got, "@"+tc.domain+">") || len(got) != len("<@"+tc.domain+">")+32 {
			t.Errorf("MessageID(%q, %q) = %q, want <32 hex chars@%s>", key, tc.sender, got, tc.domain)
		}
		if again := notify.MessageID(key, tc.sender); again != got {
			t.Errorf("MessageID is not deterministic: %q then %q", got, again)
		}
	}
	if notify.MessageID(key, "a@one.example") == notify.MessageID(key+"x", "a@one.example") {
		t.Error("different keys gave the same Message-ID")
	}
}
