/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify_test

import (
	"bytes"
	"io"
	"log"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/roster-dev/roster/internal/notify"
)

// The tests in this file send through Roster's real email sender to an
// SMTP server that nobody on the team wrote (go-smtp's server package, with
// a backend that only records), so a mistake shared by Roster's client and
// its own mail sink cannot hide.

// received is one message as the independent server saw it.
type received struct {
	from string
	to   []string
	data []byte
}

// transcript collects the server's debug log: every byte both ways, as
// the server read and wrote it.
type transcript struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (t *transcript) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.Write(p)
}

func (t *transcript) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}

type recordingBackend struct {
	mu   sync.Mutex
	msgs []received
}

func (b *recordingBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &recordingSession{b: b}, nil
}

func (b *recordingBackend) messages() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.msgs...)
}

type recordingSession struct {
	b    *recordingBackend
	from string
	to   []string
}

func (s *recordingSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from, s.to = from, nil
	return nil
}

func (s *recordingSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *recordingSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.msgs = append(s.b.msgs, received{from: s.from, to: append([]string(nil), s.to...), data: data})
	return nil
}

func (s *recordingSession) Reset()        { s.from, s.to = "", nil }
func (s *recordingSession) Logout() error { return nil }

// independentServer is a go-smtp server on a free loopback port, plain
// text and without authentication.
type independentServer struct {
	backend *recordingBackend
	wire    *transcript
	host    string
	port    int
}

func startIndependentServer(t *testing.T) *independentServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	is := &independentServer{backend: &recordingBackend{}, wire: &transcript{}}
	srv := smtp.NewServer(is.backend)
	srv.Domain = "mx.independent.example"
	srv.Debug = is.wire
	srv.ErrorLog = log.New(io.Discard, "", 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	host, port, _ := net.SplitHostPort(l.Addr().String())
	is.host = host
	is.port, _ = strconv.Atoi(port)
	return is
}

// settings are Roster's email settings for this server, as parsed from an
// SMTP Secret with the extra keys.
func (is *independentServer) settings(t *testing.T, extra map[string]string) notify.Settings {
	t.Helper()
	data := map[string][]byte{
		notify.SecretKeyHost: []byte(is.host),
		notify.SecretKeyPort: []byte(strconv.Itoa(is.port)),
		notify.SecretKeyTLS:  []byte("none"),
	}
	for k, v := range extra {
		data[k] = []byte(v)
	}
	e, err := notify.EmailSettingsFromSecret(data, "Acme People <people@acme.example>")
	if err != nil {
		t.Fatalf("EmailSettingsFromSecret: %v", err)
	}
	return notify.Settings{Organization: "team-a/acme", Email: e}
}

// sendInvitation sends one invitation through Roster's dispatcher and
// returns what the server received. Send returns after the server accepted
// the end of DATA, so the message is recorded by then.
func (is *independentServer) sendInvitation(t *testing.T, s notify.Settings) (notify.Message, received) {
	t.Helper()
	msg := invitation("uid-7/invitation/3")
	if err := newDispatcher(notify.DispatcherOptions{}).Send(testCtx(t), s, notify.ChannelEmail, msg); err != nil {
		t.Fatalf("Send: %v\nwire:\n%s", err, is.wire)
	}
	got := is.backend.messages()
	if len(got) != 1 {
		t.Fatalf("server recorded %d messages, want 1\nwire:\n%s", len(got), is.wire)
	}
	return msg, got[0]
}

// wireCommands returns the client's MAIL and RCPT commands from the
// server's transcript, as the server read them.
func wireCommands(wire string) []string {
	var cmds []string
	for _, line := range strings.Split(wire, "\r\n") {
		if u := strings.ToUpper(line); strings.HasPrefix(u, "MAIL ") || strings.HasPrefix(u, "RCPT ") {
			cmds = append(cmds, line)
		}
	}
	return cmds
}

// headerOf parses the message's top-level header.
func headerOf(t *testing.T, data []byte) textproto.MIMEHeader {
	t.Helper()
	h, err := textproto.NewReader(bufioReader(data)).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("message header does not parse: %v\n%s", err, data)
	}
	return h
}

func TestInvitationReachesAnIndependentServer(t *testing.T) {
	is := startIndependentServer(t)
	msg, got := is.sendInvitation(t, is.settings(t, nil))

	// RFC 5321 §4.1.2: the paths carry angle brackets. go-smtp's server
	// tolerates bare addresses, so its transcript is what shows the form.
	cmds := wireCommands(is.wire.String())
	if len(cmds) != 2 ||
		!strings.HasPrefix(cmds[0], "MAIL FROM:<people@acme.example>") ||
		cmds[1] != "RCPT TO:<jane@example.com>" {
		t.Errorf("envelope commands on the wire = %q, want MAIL FROM:<people@acme.example> and RCPT TO:<jane@example.com>", cmds)
	}
	if got.from != "people@acme.example" || len(got.to) != 1 || got.to[0] != "jane@example.com" {
		t.Errorf("envelope = %q -> %q, want people@acme.example -> [jane@example.com]", got.from, got.to)
	}

	h := headerOf(t, got.data)
	if from := h.Get("From"); !strings.Contains(from, "<people@acme.example>") || !strings.Contains(from, "Acme People") {
		t.Errorf("From = %q", from)
	}
	if to := h.Get("To"); !strings.Contains(to, "<jane@example.com>") || !strings.Contains(to, "Jane Doe") {
		t.Errorf("To = %q", to)
	}
	if subj := h.Get("Subject"); subj != "You are invited to join Acme on Roster" {
		t.Errorf("Subject = %q", subj)
	}
	if id, want := h.Get("Message-Id"), notify.MessageID(msg.Key, "people@acme.example"); id != want || !strings.HasSuffix(id, "@acme.example>") {
		t.Errorf("Message-ID = %q, want %q (the sender's domain)", id, want)
	}
	if k := h.Get(notify.HeaderIdempotencyKeyEmail); k != msg.Key {
		t.Errorf("%s = %q, want %q", notify.HeaderIdempotencyKeyEmail, k, msg.Key)
	}
	if h.Get("Date") == "" || h.Get("Mime-Version") == "" || !strings.HasPrefix(h.Get("Content-Type"), "multipart/alternative") {
		t.Errorf("Date=%q MIME-Version=%q Content-Type=%q", h.Get("Date"), h.Get("Mime-Version"), h.Get("Content-Type"))
	}
	if !bytes.Contains(got.data, []byte("s3cr3t-t0ken")) {
		t.Error("the invitation link is not in the message")
	}
}
