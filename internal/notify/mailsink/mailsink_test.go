/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package mailsink_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roster-dev/roster/internal/notify/mailsink"
)

const multipartMail = "From: Roster <noreply@roster.example>\r\n" +
	"To: Jane <jane@example.com>\r\n" +
	"Subject: =?UTF-8?q?Willkommen_bei_M=C3=BCller?=\r\n" +
	"Message-ID: <abc@roster.dev>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/alternative; boundary=BOUNDARY\r\n" +
	"\r\n" +
	"--BOUNDARY\r\n" +
	"Content-Type: text/plain; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Open https://portal.example.com/invite?token=3Dabc&x=3D1 and=\r\n" +
	" https://portal.example.com/ now.\r\n" +
	"--BOUNDARY\r\n" +
	"Content-Type: text/html; charset=UTF-8\r\n" +
	"\r\n" +
	"<p>Hello</p>\r\n" +
	"--BOUNDARY--\r\n"

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func start(t *testing.T, opts mailsink.Options) *mailsink.Server {
	t.Helper()
	s, err := mailsink.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// dial connects with the standard library client, independent of the
// client Roster uses, so the sink is tested against a second
// implementation.
func dial(t *testing.T, s *mailsink.Server, implicitTLS bool) *smtp.Client {
	t.Helper()
	var conn net.Conn
	var err error
	if implicitTLS {
		conn, err = tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: s.CertPool(), ServerName: s.Host()})
	} else {
		conn, err = net.Dial("tcp", s.Addr())
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClient(conn, s.Host())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func send(c *smtp.Client, from, to, raw string) error {
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(raw)); err != nil {
		return err
	}
	return w.Close()
}

func code(err error) int {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return tp.Code
	}
	return 0
}

func TestRecordsAndParsesMessages(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	s := start(t, mailsink.Options{OnMail: func(m mailsink.Mail) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, m.Subject)
	}})
	if err := send(dial(t, s, false), "noreply@roster.example", "jane@example.com", multipartMail); err != nil {
		t.Fatal(err)
	}
	mails, err := s.WaitFor(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	m := mails[0]
	if m.From != "noreply@roster.example" || !slices.Equal(m.To, []string{"jane@example.com"}) {
		t.Errorf("envelope %q -> %q", m.From, m.To)
	}
	if m.Subject != "Willkommen bei Müller" || m.MessageID != "<abc@roster.dev>" || m.ContentType != "multipart/alternative" {
		t.Errorf("subject=%q id=%q type=%q", m.Subject, m.MessageID, m.ContentType)
	}
	if m.Header.Get("To") != "Jane <jane@example.com>" {
		t.Errorf("To header = %q", m.Header.Get("To"))
	}
	if strings.TrimSpace(m.HTML) != "<p>Hello</p>" {
		t.Errorf("HTML = %q", m.HTML)
	}
	want := []string{"https://portal.example.com/invite?token=abc&x=1", "https://portal.example.com/"}
	if got := m.Links(); !slices.Equal(got, want) {
		t.Errorf("Links() = %q, want %q (text %q)", got, want, m.Text)
	}
	if !strings.Contains(string(m.Raw), "Content-Transfer-Encoding: quoted-printable") {
		t.Error("Raw is not the message as sent")
	}
	if m.TLS || m.AuthUser != "" {
		t.Errorf("TLS=%t AuthUser=%q on a plain, anonymous connection", m.TLS, m.AuthUser)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []string{"Willkommen bei Müller"}) {
		t.Errorf("OnMail saw %q", seen)
	}
}

func TestAuthIsRequired(t *testing.T) {
	s := start(t, mailsink.Options{Username: "mailer", Password: "pw"})
	if err := send(dial(t, s, false), "a@example.com", "b@example.com", multipartMail); code(err) != 502 {
		t.Errorf("unauthenticated MAIL = %v, want 502", err)
	}
	if err := dial(t, s, false).Auth(smtp.PlainAuth("", "mailer", "wrong", s.Host())); code(err) != 535 {
		t.Errorf("wrong password = %v, want 535", err)
	}
	c := dial(t, s, false)
	if err := c.Auth(smtp.PlainAuth("", "mailer", "pw", s.Host())); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "a@example.com", "b@example.com", multipartMail); err != nil {
		t.Fatal(err)
	}
	if m := s.Messages(); len(m) != 1 || m[0].AuthUser != "mailer" {
		t.Errorf("messages = %+v", m)
	}
}

func TestStartTLS(t *testing.T) {
	s := start(t, mailsink.Options{TLS: mailsink.TLSStartTLS, Username: "mailer", Password: "pw"})
	c := dial(t, s, false)
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered")
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before STARTTLS")
	}
	if err := c.StartTLS(&tls.Config{RootCAs: s.CertPool(), ServerName: s.Host()}); err != nil {
		t.Fatalf("STARTTLS with the sink's certificate: %v", err)
	}
	if err := c.Auth(smtp.PlainAuth("", "mailer", "pw", s.Host())); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "a@example.com", "b@example.com", multipartMail); err != nil {
		t.Fatal(err)
	}
	if m := s.Messages(); len(m) != 1 || !m[0].TLS {
		t.Errorf("messages = %+v, want one over TLS", m)
	}
	if err := dial(t, s, false).StartTLS(&tls.Config{ServerName: s.Host()}); err == nil {
		t.Error("STARTTLS verified against the system roots; the certificate should be self-signed")
	}
}

func TestImplicitTLS(t *testing.T) {
	s := start(t, mailsink.Options{TLS: mailsink.TLSImplicit})
	if !s.Certificate().IsCA || s.Certificate().VerifyHostname("127.0.0.1") != nil || s.Certificate().VerifyHostname("localhost") != nil {
		t.Error("certificate is not valid for loopback")
	}
	c := dial(t, s, true)
	if err := send(c, "a@example.com", "b@example.com", multipartMail); err != nil {
		t.Fatal(err)
	}
	if m := s.Messages(); len(m) != 1 || !m[0].TLS {
		t.Errorf("messages = %+v, want one over TLS", m)
	}
	if strings.Count(string(s.CertificatePEM()), "BEGIN CERTIFICATE") != 1 {
		t.Errorf("CertificatePEM = %q", s.CertificatePEM())
	}
}

func TestFailureSwitches(t *testing.T) {
	s := start(t, mailsink.Options{RejectRecipients: []string{"gone@example.com"}})
	if err := send(dial(t, s, false), "a@example.com", "Gone@example.com", multipartMail); code(err) != 550 {
		t.Errorf("rejected recipient = %v, want 550", err)
	}
	s.RejectRecipients()
	s.FailTemporarily(true)
	if err := send(dial(t, s, false), "a@example.com", "gone@example.com", multipartMail); code(err) != 451 {
		t.Errorf("temporary failure = %v, want 451", err)
	}
	s.FailTemporarily(false)
	if err := send(dial(t, s, false), "a@example.com", "gone@example.com", multipartMail); err != nil {
		t.Errorf("after clearing the switches: %v", err)
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages recorded, want 1", n)
	}
}

func TestDownAndUpKeepThePort(t *testing.T) {
	s := start(t, mailsink.Options{})
	addr := s.Addr()
	if err := send(dial(t, s, false), "a@example.com", "b@example.com", multipartMail); err != nil {
		t.Fatal(err)
	}
	if err := s.Down(); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		_ = conn.Close()
		t.Fatal("connection accepted while down")
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != addr {
		t.Errorf("address changed from %s to %s", addr, s.Addr())
	}
	if err := send(dial(t, s, false), "a@example.com", "b@example.com", multipartMail); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Messages()); n != 2 {
		t.Errorf("%d messages recorded, want 2 (messages survive Down)", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Up(); err == nil {
		t.Error("Up after Close succeeded")
	}
}

func TestWaitForReturnsContextError(t *testing.T) {
	s := start(t, mailsink.Options{})
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	mails, err := s.WaitFor(c, 1)
	if !errors.Is(err, context.Canceled) || len(mails) != 0 {
		t.Errorf("WaitFor = %v, %v; want context.Canceled and no mails", mails, err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := s.WaitFor(ctx(t), 2)
		done <- err
	}()
	for range 2 {
		if err := send(dial(t, s, false), "a@example.com", "b@example.com", multipartMail); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("WaitFor(2) after two messages: %v", err)
	}
}

func TestStartRejectsUnknownTLSMode(t *testing.T) {
	if _, err := mailsink.Start(mailsink.Options{TLS: "ssl"}); err == nil {
		t.Error("Start accepted an unknown TLS mode")
	}
}

// rawConn holds a net/textproto conversation with the sink, so the test
// controls every byte of a command; clients like net/smtp always add the
// angle brackets and could never send what a buggy client sends.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	*textproto.Conn
}

func dialRaw(t *testing.T, s *mailsink.Server) rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.Addr(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	c := rawConn{t, nc, textproto.NewConn(nc)}
	t.Cleanup(func() { _ = c.Close() })
	c.expect("greeting", 220)
	return c
}

// startTLS upgrades the conversation, trusting only the sink.
func (c rawConn) startTLS(s *mailsink.Server) rawConn {
	c.t.Helper()
	c.cmd("STARTTLS", 220)
	tc := tls.Client(c.nc, &tls.Config{RootCAs: s.CertPool(), ServerName: s.Host()})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake after STARTTLS: %v", err)
	}
	return rawConn{c.t, tc, textproto.NewConn(tc)}
}

// expect reads a reply and fails the test unless its code is want.
func (c rawConn) expect(what string, want int) string {
	c.t.Helper()
	code, msg, err := c.ReadResponse(0)
	if code != want {
		c.t.Errorf("%s: got %d %q (%v), want %d", what, code, msg, err, want)
	}
	return msg
}

// cmd sends one command line exactly as given and checks the reply code.
func (c rawConn) cmd(line string, want int) string {
	c.t.Helper()
	if err := c.PrintfLine("%s", line); err != nil {
		c.t.Fatal(err)
	}
	return c.expect(line, want)
}

func TestEnvelopePathsNeedAngleBrackets(t *testing.T) {
	s := start(t, mailsink.Options{})
	c := dialRaw(t, s)
	c.cmd("EHLO client.example", 250)
	if msg := c.cmd("MAIL FROM:people@acme.example", 501); msg != "5.5.4 Syntax error in parameters or arguments" {
		t.Errorf("501 text = %q", msg)
	}
	c.cmd("MAIL FROM:<people@acme.example>", 250)
	c.cmd("RCPT TO:bob@x.example", 501)
	c.cmd("RCPT TO:<bob@x.example>", 250)

	// The 501s must not have disturbed the transaction.
	c.cmd("DATA", 354)
	body := "Subject: hi\r\n\r\nMAIL FROM:not-a-command@example.com\r\n..stuffed\r\n.\r\n"
	if _, err := c.W.WriteString(body); err != nil || c.W.Flush() != nil {
		t.Fatal(err)
	}
	c.expect("end of data", 250)
	mails := s.Messages()
	if len(mails) != 1 || mails[0].From != "people@acme.example" || !slices.Equal(mails[0].To, []string{"bob@x.example"}) {
		t.Fatalf("messages = %+v", mails)
	}
	if got := mails[0].Text; got != "MAIL FROM:not-a-command@example.com\r\n.stuffed\r\n" {
		t.Errorf("body = %q; a body line was treated as a command or not relayed verbatim", got)
	}
}

func TestEnvelopeSyntaxCases(t *testing.T) {
	s := start(t, mailsink.Options{})
	c := dialRaw(t, s)
	c.cmd("EHLO client.example", 250)
	for _, tc := range []struct {
		line string
		want int
	}{
		{"MAIL FROM: <a@example.com>", 501}, // RFC 5321 allows no space after the colon
		{"MAIL FROM:<a@example.com", 501},
		{"MAIL FROM:a@example.com>", 501},
		{"MAIL FROM:<a@example.com>BODY=8BITMIME", 501},
		{"MAIL  FROM:<a@example.com>", 501},
		{"MAIL FROM:<>", 250}, // the null reverse path of bounces
		{"RSET", 250},
		{"mail from:<a@example.com> BODY=8BITMIME", 250},
		{"RCPT TO:<>", 501},
		{"RCPT TO: <b@example.com>", 501},
		{`RCPT TO:<"b>c"@example.com>`, 250},
		{"RCPT TO:<d@example.com> NOTIFY=NEVER", 504}, // parameters reach go-smtp, which has DSN off
		{"rcpt to:<e@example.com>", 250},
	} {
		c.cmd(tc.line, tc.want)
	}
}

func TestEnvelopeSyntaxAfterStartTLSAndAuth(t *testing.T) {
	s := start(t, mailsink.Options{TLS: mailsink.TLSStartTLS, Username: "mailer", Password: "pw"})
	c := dialRaw(t, s)
	if msg := c.cmd("EHLO client.example", 250); strings.Contains(msg, "AUTH") {
		t.Errorf("AUTH offered before STARTTLS: %q", msg)
	}
	c = c.startTLS(s)
	if msg := c.cmd("EHLO client.example", 250); !strings.Contains(msg, "AUTH PLAIN") || strings.Contains(msg, "STARTTLS") {
		t.Errorf("EHLO after STARTTLS = %q", msg)
	}
	c.cmd("STARTTLS", 502)                  // already running in TLS
	c.cmd("MAIL FROM:<a@example.com>", 502) // authentication required
	c.cmd("AUTH PLAIN", 334)
	c.cmd(base64.StdEncoding.EncodeToString([]byte("\x00mailer\x00pw")), 235)
	c.cmd("MAIL FROM:a@example.com", 501)
	c.cmd("MAIL FROM:<a@example.com>", 250)
	c.cmd("RCPT TO:b@example.com", 501)
	c.cmd("RCPT TO:<b@example.com>", 250)
	c.cmd("DATA", 354)
	if err := c.PrintfLine("Subject: over TLS\r\n\r\nhello\r\n."); err != nil {
		t.Fatal(err)
	}
	c.expect("end of data", 250)
	c.cmd("QUIT", 221)
	if m := s.Messages(); len(m) != 1 || !m[0].TLS || m[0].AuthUser != "mailer" || m[0].Subject != "over TLS" {
		t.Errorf("messages = %+v", m)
	}
}

func TestEnvelopeSyntaxWithImplicitTLS(t *testing.T) {
	s := start(t, mailsink.Options{TLS: mailsink.TLSImplicit})
	c := dial(t, s, true)
	if err := c.Mail("a@example.com"); err != nil {
		t.Fatal(err)
	}
	// net/smtp adds the brackets itself; a raw command shows the check.
	if id, err := c.Text.Cmd("RCPT TO:b@example.com"); err != nil {
		t.Fatal(err)
	} else {
		c.Text.StartResponse(id)
		code, _, _ := c.Text.ReadResponse(0)
		c.Text.EndResponse(id)
		if code != 501 {
			t.Errorf("RCPT without brackets over implicit TLS = %d, want 501", code)
		}
	}
}

// Pipelined commands get their replies in order, including the relay's
// own 501s between go-smtp's replies.
func TestPipelinedRepliesStayInOrder(t *testing.T) {
	s := start(t, mailsink.Options{})
	c := dialRaw(t, s)
	c.cmd("EHLO client.example", 250)
	lines := "MAIL FROM:bad@example.com\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:bad@example.com\r\nRCPT TO:<b@example.com>\r\nNOOP\r\n"
	if _, err := c.W.WriteString(lines); err != nil || c.W.Flush() != nil {
		t.Fatal(err)
	}
	for i, want := range []int{501, 250, 501, 250, 250} {
		c.expect(fmt.Sprintf("pipelined reply %d", i), want)
	}
}

// go-smtp offers CHUNKING; a BDAT chunk is passed on byte for byte and is
// never read as commands, even when BDAT itself is refused.
func TestBDATChunksAreRelayed(t *testing.T) {
	s := start(t, mailsink.Options{})
	c := dialRaw(t, s)
	if msg := c.cmd("EHLO client.example", 250); !strings.Contains(msg, "CHUNKING") {
		t.Skipf("go-smtp no longer offers CHUNKING: %q", msg)
	}
	write := func(s string) {
		t.Helper()
		if _, err := c.W.WriteString(s); err != nil || c.W.Flush() != nil {
			t.Fatal(err)
		}
	}
	chunk := "MAIL FROM:bad@example.com\r\n"
	write(fmt.Sprintf("BDAT %d\r\n%s", len(chunk), chunk))
	c.expect("BDAT without a transaction", 502)
	c.cmd("MAIL FROM:<a@example.com>", 250)
	c.cmd("RCPT TO:<b@example.com>", 250)
	msg := "Subject: chunked\r\n\r\nMAIL FROM:x\r\n"
	write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg), msg))
	c.expect("BDAT LAST", 250)
	c.cmd("NOOP", 250)
	if m := s.Messages(); len(m) != 1 || m[0].Subject != "chunked" || m[0].Text != "MAIL FROM:x\r\n" {
		t.Errorf("messages = %+v", m)
	}
}
