/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package mailsink is a real SMTP server on loopback that keeps every
// message it receives in memory. Tests use it to check what Roster actually
// put on the wire, and "make demo" uses it to show mails without a mail
// provider. It can require AUTH PLAIN, speak STARTTLS or implicit TLS with
// a certificate generated in memory, reject recipients, fail temporarily,
// and go down and come back on the same port.
//
// The sink is deliberately as strict as RFC 5321 where clients commonly go
// wrong: MAIL FROM and RCPT TO must carry the path in angle brackets right
// after the colon, or the command is answered with 501, as strict
// production servers do. go-smtp, which implements the rest of the
// protocol, would accept a bare address, so a relay in front of it checks
// the raw command lines (see frontend.go).
package mailsink

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TLSMode selects how clients must encrypt.
type TLSMode string

const (
	// TLSNone accepts plain-text SMTP only.
	TLSNone TLSMode = ""
	// TLSStartTLS offers STARTTLS on a plain-text listener; AUTH is only
	// offered after the upgrade, as on real submission servers.
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte, like port 465.
	TLSImplicit TLSMode = "tls"
)

// Options configures a Server. The zero value is a plain-text server on
// a free loopback port without authentication.
type Options struct {
	// Addr to listen on; default "127.0.0.1:0" (a free port). Use a fixed
	// port when something outside the process must be configured with it.
	Addr string
	// TLS selects plain text, STARTTLS or implicit TLS.
	TLS TLSMode
	// Username and Password, when Username is set, make AUTH PLAIN
	// mandatory before MAIL FROM.
	Username string
	// Password goes with Username.
	Password string
	// RejectRecipients are answered with 550 at RCPT TO.
	RejectRecipients []string
	// OnMail is called for every accepted message, from the connection's
	// goroutine after the message is stored; keep it fast.
	OnMail func(Mail)
	// Domain is announced in the greeting; default "localhost".
	Domain string
}

// Mail is one received message.
type Mail struct {
	// From is the envelope sender (MAIL FROM).
	From string
	// To are the envelope recipients (RCPT TO).
	To []string
	// Raw is the message as received, after dot-unstuffing.
	Raw []byte
	// Header holds the top-level header fields, undecoded.
	Header textproto.MIMEHeader
	// Subject is the decoded subject.
	Subject string
	// MessageID is the Message-ID header value including angle brackets.
	MessageID string
	// ContentType is the top-level media type, e.g. "multipart/alternative".
	ContentType string
	// Text is the decoded first text/plain part.
	Text string
	// HTML is the decoded first text/html part.
	HTML string
	// TLS reports whether the message arrived over an encrypted connection.
	TLS bool
	// AuthUser is the authenticated user name, or "".
	AuthUser string
}

var linkPattern = regexp.MustCompile(`https?://[^\s<>"']+`)

// Links returns the http(s) URLs in the text part, in order, so tests and
// the demo can follow invitation links.
func (m Mail) Links() []string {
	return linkPattern.FindAllString(m.Text, -1)
}

// Server is a running mail sink. Its methods are safe for concurrent use.
type Server struct {
	opts    Options
	cert    tls.Certificate
	leaf    *x509.Certificate
	certPEM []byte

	mu       sync.Mutex
	addr     string
	inst     *instance // nil while down
	mails    []Mail
	changed  chan struct{}
	rejected map[string]bool
	tempFail bool
	closed   bool
}

// Start generates the certificate and starts listening.
func Start(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Domain == "" {
		opts.Domain = "localhost"
	}
	switch opts.TLS {
	case TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return nil, fmt.Errorf("mailsink: unknown TLS mode %q", opts.TLS)
	}
	cert, leaf, certPEM, err := selfSigned()
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:     opts,
		cert:     cert,
		leaf:     leaf,
		certPEM:  certPEM,
		addr:     opts.Addr,
		changed:  make(chan struct{}),
		rejected: map[string]bool{},
	}
	s.RejectRecipients(opts.RejectRecipients...)
	if err := s.Up(); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr returns host:port; after Down it is the address Up will reuse.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Host returns the listening IP address.
func (s *Server) Host() string {
	h, _, _ := net.SplitHostPort(s.Addr())
	return h
}

// Port returns the listening port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr())
	n, _ := strconv.Atoi(p)
	return n
}

// Certificate returns the server's self-signed certificate. It is valid
// for 127.0.0.1, ::1 and localhost.
func (s *Server) Certificate() *x509.Certificate { return s.leaf }

// CertificatePEM returns the certificate PEM-encoded, the form a caBundle
// Secret key takes.
func (s *Server) CertificatePEM() []byte { return bytes.Clone(s.certPEM) }

// CertPool returns a pool that trusts only this server.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.leaf)
	return p
}

// instance is the sink between one Up and the next Down: the TCP
// listener, the go-smtp server behind the relays, and the relays' client
// connections, which Down must close itself because go-smtp only sees the
// pipes.
type instance struct {
	tcp    net.Listener
	pipes  *pipeListener
	srv    *smtp.Server
	served chan struct{} // closed when go-smtp's Serve returns
	wg     sync.WaitGroup

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closing bool
}

// track registers a client connection, or reports false when Down has
// already started.
func (in *instance) track(c net.Conn) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closing {
		return false
	}
	in.conns[c] = struct{}{}
	return true
}

func (in *instance) untrack(c net.Conn) {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.conns, c)
}

func (in *instance) closeConns() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.closing = true
	for c := range in.conns {
		_ = c.Close()
	}
}

// Up starts listening on Addr. After Down it reopens the same port, so a
// client configured with the old address reaches the server again.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("mailsink: server is closed")
	}
	if s.inst != nil {
		return nil
	}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12}
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("mailsink: listen: %w", err)
	}
	srv := smtp.NewServer(backend{s})
	srv.Domain = s.opts.Domain
	// No Read/WriteTimeout: the relay enforces them on the client
	// connection and closes the pipe when it gives up.
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 100
	srv.ErrorLog = log.New(io.Discard, "", 0)
	if s.opts.TLS != TLSNone {
		// For STARTTLS go-smtp offers and performs the upgrade; for both
		// modes it needs the config to speak TLS with the relay.
		srv.TLSConfig = tlsConfig
	}
	// Without TLS there is no other way to authenticate; the sink only
	// listens on loopback.
	srv.AllowInsecureAuth = s.opts.TLS == TLSNone

	in := &instance{
		tcp:    l,
		pipes:  newPipeListener(l.Addr()),
		srv:    srv,
		served: make(chan struct{}),
		conns:  map[net.Conn]struct{}{},
	}
	go func() {
		defer close(in.served)
		_ = srv.Serve(in.pipes)
	}()
	inner := &tls.Config{RootCAs: s.CertPool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		for {
			c, err := l.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil { // e.g. out of file descriptors; try again
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if !in.track(c) {
				_ = c.Close()
				return
			}
			in.wg.Add(1)
			go func() {
				defer in.wg.Done()
				defer in.untrack(c)
				r := &relay{raw: c, client: c, pipes: in.pipes, tlsSrv: tlsConfig, tlsInner: inner}
				r.serve(s.opts.TLS == TLSImplicit)
			}()
		}
	}()
	s.inst = in
	s.addr = l.Addr().String()
	return nil
}

// Down closes the listener and all connections; clients get "connection
// refused" until Up. Received messages are kept.
func (s *Server) Down() error {
	s.mu.Lock()
	in := s.inst
	s.inst = nil
	s.mu.Unlock()
	if in == nil {
		return nil
	}
	err := in.tcp.Close()
	in.closeConns()
	// Server.Close only closes listeners Serve has registered; closing ours
	// too covers a Down that races with the start of Serve.
	_ = in.srv.Close()
	_ = in.pipes.Close()
	in.wg.Wait()
	<-in.served
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Close stops the server for good.
func (s *Server) Close() error {
	err := s.Down()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return err
}

// RejectRecipients replaces the set of addresses answered with 550 at RCPT
// TO. Call it without arguments to accept everyone again.
func (s *Server) RejectRecipients(addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected = map[string]bool{}
	for _, a := range addrs {
		s.rejected[strings.ToLower(a)] = true
	}
}

// FailTemporarily makes MAIL FROM answer 451 while on, like a server that
// is overloaded or greylisting.
func (s *Server) FailTemporarily(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tempFail = on
}

// Messages returns a copy of everything received so far, in order.
func (s *Server) Messages() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// WaitFor blocks until at least n messages have arrived and returns all
// received messages, or returns ctx's error with what arrived so far.
func (s *Server) WaitFor(ctx context.Context, n int) ([]Mail, error) {
	for {
		s.mu.Lock()
		mails := append([]Mail(nil), s.mails...)
		changed := s.changed
		s.mu.Unlock()
		if len(mails) >= n {
			return mails, nil
		}
		select {
		case <-ctx.Done():
			return mails, fmt.Errorf("mailsink: got %d of %d messages: %w", len(mails), n, ctx.Err())
		case <-changed:
		}
	}
}

func (s *Server) record(m Mail) {
	s.mu.Lock()
	s.mails = append(s.mails, m)
	close(s.changed)
	s.changed = make(chan struct{})
	onMail := s.opts.OnMail
	s.mu.Unlock()
	if onMail != nil {
		onMail(m)
	}
}

type backend struct{ s *Server }

// NewSession starts an SMTP session; it is called again after STARTTLS,
// so the session sees the final TLS state.
func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{s: b.s, tls: isTLS}, nil
}

type session struct {
	s        *Server
	tls      bool
	authUser string
	from     string
	to       []string
}

var (
	errTempFail = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, try again later"}
	errRejected = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Mailbox unavailable"}
	errBadMail  = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Malformed message"}
)

// AuthMechanisms offers PLAIN only when credentials are configured.
func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

// Auth checks PLAIN credentials in constant time.
func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.s.opts.Username == "" || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return smtp.ErrAuthFailed
		}
		userOK := subtle.ConstantTimeCompare([]byte(username), []byte(ss.s.opts.Username)) == 1
		passOK := subtle.ConstantTimeCompare([]byte(password), []byte(ss.s.opts.Password)) == 1
		if !userOK || !passOK {
			return smtp.ErrAuthFailed
		}
		ss.authUser = username
		return nil
	}), nil
}

// Mail enforces authentication and the temporary-failure switch.
func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.Username != "" && ss.authUser == "" {
		return smtp.ErrAuthRequired
	}
	ss.s.mu.Lock()
	fail := ss.s.tempFail
	ss.s.mu.Unlock()
	if fail {
		return errTempFail
	}
	ss.from = from
	ss.to = nil
	return nil
}

// Rcpt enforces the rejected-recipient list.
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	rejected := ss.s.rejected[strings.ToLower(to)]
	ss.s.mu.Unlock()
	if rejected {
		return errRejected
	}
	ss.to = append(ss.to, to)
	return nil
}

// Data parses and records the message; unparsable mail is rejected so a
// client bug shows up as a failed send.
func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := parse(raw)
	if err != nil {
		return errBadMail
	}
	m.From = ss.from
	m.To = append([]string(nil), ss.to...)
	m.TLS = ss.tls
	m.AuthUser = ss.authUser
	ss.s.record(m)
	return nil
}

// Reset forgets the envelope but keeps the authentication.
func (ss *session) Reset() {
	ss.from = ""
	ss.to = nil
}

// Logout has nothing to release.
func (ss *session) Logout() error { return nil }

// parse decodes headers and the first text/plain and text/html parts, so
// tests compare what a mail client would show rather than wire encoding.
func parse(raw []byte) (Mail, error) {
	m := Mail{Raw: raw, Header: textproto.MIMEHeader{}}
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) {
		return m, err
	}
	h := gomail.Header{Header: e.Header}
	for k, v := range e.Header.Map() {
		m.Header[textproto.CanonicalMIMEHeaderKey(k)] = v
	}
	if m.Subject, err = h.Subject(); err != nil {
		return m, err
	}
	m.MessageID = e.Header.Get("Message-Id")
	m.ContentType, _, _ = e.Header.ContentType()
	err = e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil {
			return err
		}
		mediaType, _, _ := part.Header.ContentType()
		if disp, _, _ := part.Header.ContentDisposition(); disp == "attachment" {
			return nil
		}
		var dst *string
		switch {
		case mediaType == "text/plain" && m.Text == "":
			dst = &m.Text
		case mediaType == "text/html" && m.HTML == "":
			dst = &m.HTML
		case mediaType == "" && m.Text == "" && part.MultipartReader() == nil:
			dst = &m.Text // RFC 2045: no Content-Type means text/plain
		default:
			return nil
		}
		b, err := io.ReadAll(part.Body)
		if err != nil {
			return err
		}
		*dst = string(b)
		return nil
	})
	return m, err
}
