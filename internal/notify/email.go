/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// MessageIDDomain is the right-hand side of a Message-ID when the sender's
// address has no domain usable there (see MessageID). Normally the sender's
// own domain is used: spam filters count a Message-ID from a domain that
// has nothing to do with the From address against the mail.
const MessageIDDomain = "roster.dev"

// HeaderIdempotencyKeyEmail carries Message.Key in emails, so a mail can be
// traced back to the object and generation that caused it.
const HeaderIdempotencyKeyEmail = "X-Roster-Idempotency-Key"

// MessageID returns the Message-ID header value, angle brackets included,
// for an idempotency key and the sender (an address, optionally with a
// display name, as in EmailSettings.From). It is a pure function of its
// arguments so that a retried send produces the same Message-ID and mail
// systems can deduplicate; hashing keeps object UIDs out of the header. The
// right-hand side is the sender's domain, because that is the domain the
// mail claims to come from (and the one that signs it with DKIM);
// MessageIDDomain stands in when the sender has no plain ASCII domain.
func MessageID(key, sender string) string {
	sum := sha256.Sum256([]byte(key))
	return "<" + hex.EncodeToString(sum[:])[:32] + "@" + messageIDDomain(sender) + ">"
}

// messageIDDomain is the sender's domain, lower-cased, when it can stand
// in a msg-id's dot-atom (RFC 5322 §3.6.4) as it is; otherwise
// MessageIDDomain.
func messageIDDomain(sender string) string {
	a, err := mail.ParseAddress(sender)
	if err != nil {
		return MessageIDDomain
	}
	domain := strings.ToLower(addressDomain(a.Address))
	if !isDNSName(domain) {
		return MessageIDDomain
	}
	return domain
}

// addressDomain returns the part of addr after its last "@".
func addressDomain(addr string) string {
	return addr[strings.LastIndexByte(addr, '@')+1:]
}

// isDNSName reports whether s is a plain ASCII host name: dot-separated
// non-empty labels of letters, digits, hyphens and underscores.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// envelopePath formats an address as an SMTP path, "<local@domain>" with
// the local part quoted where it needs to be. RFC 5321 §4.1.2 requires the
// angle brackets in MAIL FROM and RCPT TO; strict servers answer a bare
// address with 501, and the go-mail client sends the argument as given.
func envelopePath(addr string) string {
	return (&mail.Address{Address: addr}).String()
}

// sendEmail delivers one rendered message over SMTP. Each call uses its own
// connection: notifications are rare enough that pooling would only add
// state that can go stale.
func (d *Dispatcher) sendEmail(ctx context.Context, s *EmailSettings, msg Message, r Rendered) error {
	const ch = ChannelEmail
	if err := checkRecipient(ch, msg.To); err != nil {
		return err
	}
	to, err := mail.ParseAddress(msg.To.Email)
	if err != nil {
		return permanentf(ch, nil, "recipient email address is invalid")
	}
	from, err := mail.ParseAddress(s.From)
	if err != nil {
		return permanentf(ch, nil, "sender address is invalid")
	}

	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	m.FromMailAddress(from)
	m.ToMailAddress(&mail.Address{Name: strings.Join(strings.Fields(msg.To.Name), " "), Address: to.Address})
	m.Subject(r.Subject)
	m.SetMessageIDWithValue(strings.Trim(MessageID(msg.Key, s.From), "<>"))
	m.SetDate()
	m.SetGenHeader(gomail.Header(HeaderIdempotencyKeyEmail), msg.Key)
	// RFC 3834: stops vacation responders from answering notifications.
	m.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	m.SetUserAgent("Roster")
	m.SetBodyString(gomail.TypeTextPlain, r.Text)
	m.AddAlternativeString(gomail.TypeTextHTML, r.HTML)
	// Rendered (and signed) before connecting: a message that cannot be
	// built fails without opening a conversation it would have to abort.
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		return permanentf(ch, err, "cannot build the message: %v", err)
	}
	raw := buf.Bytes()
	if s.DKIM != nil {
		if raw, err = signDKIM(s.DKIM, raw); err != nil {
			// Neither the key nor the signer's words about it go out.
			return permanentf(ch, nil, "cannot sign the message with DKIM selector %q of domain %q", s.DKIM.Selector, s.DKIM.Domain)
		}
	}

	client, err := gomail.NewClient(s.Host, d.smtpOptions(s)...)
	if err != nil {
		return permanentf(ch, err, "invalid SMTP settings: %v", err)
	}
	conn, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return smtpError(ctx, "connect", err)
	}
	// The dial honours ctx, but the SMTP conversation after it only has
	// per-command deadlines; closing the connection makes cancellation
	// interrupt it too.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer func() { _ = client.CloseWithSMTPClient(conn) }()

	if err := conn.Mail(envelopePath(from.Address)); err != nil {
		return smtpError(ctx, "MAIL FROM", err)
	}
	if err := conn.Rcpt(envelopePath(to.Address)); err != nil {
		return smtpError(ctx, "RCPT TO", err)
	}
	w, err := conn.Data()
	if err != nil {
		return smtpError(ctx, "DATA", err)
	}
	if _, err := w.Write(raw); err != nil {
		_ = w.Close()
		return smtpError(ctx, "DATA", err)
	}
	if err := w.Close(); err != nil {
		return smtpError(ctx, "end of DATA", err)
	}
	return nil
}

// dkimHeaders are the header fields the DKIM signature covers: everything
// a reader sees or a filter judges. From, To and Subject are listed once
// more than they occur ("oversigned", RFC 6376 §8.15), so a second copy
// added in transit breaks the signature instead of being shown in place
// of the signed one.
var dkimHeaders = []string{
	"From", "From", "To", "To", "Subject", "Subject", "Date", "Message-ID",
	"MIME-Version", "Content-Type", "Auto-Submitted", HeaderIdempotencyKeyEmail,
}

// signDKIM returns raw with a DKIM-Signature header in front: rsa-sha256
// or ed25519-sha256 by key type, relaxed/relaxed canonicalization, which
// survives the whitespace changes relays make. go-msgauth signs because
// go-mail's own signer (v0.8.1) produced signatures that independent
// verifiers reject.
func signDKIM(d *DKIMSettings, raw []byte) ([]byte, error) {
	var signed bytes.Buffer
	signed.Grow(len(raw) + 1024)
	err := dkim.Sign(&signed, bytes.NewReader(raw), &dkim.SignOptions{
		Domain:                 d.Domain,
		Selector:               d.Selector,
		Signer:                 d.Key,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             dkimHeaders,
	})
	if err != nil {
		return nil, err
	}
	return signed.Bytes(), nil
}

func (d *Dispatcher) smtpOptions(s *EmailSettings) []gomail.Option {
	tlsConfig := &tls.Config{
		ServerName:         s.Host,
		MinVersion:         tls.VersionTLS12,
		RootCAs:            s.RootCAs,
		InsecureSkipVerify: s.InsecureSkipVerify, //nolint:gosec // opt-in from the Secret, for test servers
	}
	opts := []gomail.Option{
		gomail.WithPort(s.Port),
		gomail.WithTimeout(d.opts.SMTPTimeout),
		gomail.WithTLSConfig(tlsConfig),
	}
	dial := addressGuard{allow: d.opts.Allow}.dialer(d.opts.SMTPTimeout)
	if s.TLS == TLSModeImplicit {
		// go-mail wraps its own dialer in TLS, but not one given to it.
		opts = append(opts, gomail.WithDialContextFunc((&tls.Dialer{NetDialer: dial, Config: tlsConfig}).DialContext))
	} else {
		opts = append(opts, gomail.WithDialContextFunc(dial.DialContext))
	}
	switch s.TLS {
	case TLSModeImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSModeNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.Username != "" {
		opts = append(opts,
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin),
			gomail.WithUsername(s.Username),
			gomail.WithPassword(s.Password),
		)
	}
	return opts
}

// smtpError classifies an SMTP failure. Reply codes decide: 5xx is
// permanent, 4xx transient. The server's reply text is kept (trimmed)
// because it is what an administrator needs to fix a rejection.
func smtpError(ctx context.Context, stage string, err error) error {
	const ch = ChannelEmail
	if ctxErr := ctx.Err(); ctxErr != nil {
		return transientf(ch, ctxErr, "%s: %v", stage, ctxErr)
	}
	var reply *textproto.Error
	if errors.As(err, &reply) {
		// The server's own words stay out: they end up in status, and a tenant's server
		// chooses them. The code, and the enhanced status code (RFC 3463) when there is one,
		// say what happened.
		e := transientf(ch, err, "%s: server replied %d%s", stage, reply.Code, enhancedCode(reply.Msg))
		e.Code = reply.Code
		e.Permanent = reply.Code >= 500
		return e
	}
	var denied *DeniedAddressError
	if errors.As(err, &denied) {
		return permanentf(ch, err, "%s: %v", stage, denied)
	}
	if errors.Is(err, smtp.ErrUnencrypted) {
		return permanentf(ch, err, "%s: refusing to send credentials over an unencrypted connection", stage)
	}
	return transientf(ch, err, "%s: %s", stage, shorten(err.Error()))
}

// enhancedCode is the RFC 3463 status code a reply starts with (" 5.1.1"), or "".
func enhancedCode(msg string) string {
	if m := enhancedCodeRE.FindString(msg); m != "" {
		return " " + m
	}
	return ""
}

var enhancedCodeRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}\b`)

// shorten keeps server-provided text to one reasonably short line.
func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const limit = 300
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return s
}
