/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
)

// Channel is a delivery channel. Organizations enable channels by providing
// their settings; ChannelLog needs none and is meant for development and
// for clusters that do not send real notifications.
type Channel string

const (
	// ChannelEmail delivers over SMTP to Recipient.Email.
	ChannelEmail Channel = "email"
	// ChannelSMS posts to an SMS provider's HTTP API for Recipient.Phone.
	ChannelSMS Channel = "sms"
	// ChannelWebhook posts a signed, Slack-compatible JSON event to an
	// admin-facing endpoint; it never carries links or codes.
	ChannelWebhook Channel = "webhook"
	// ChannelLog only writes the subject and recipient to the operator log.
	ChannelLog Channel = "log"
)

// Recipient of a message. Which field is required depends on the channel:
// email needs Email, SMS needs Phone, webhook and log need none.
type Recipient struct {
	// Name is used in greetings and the email To header.
	Name string `json:"name,omitempty"`
	// Email is the address for ChannelEmail.
	Email string `json:"email,omitempty"`
	// Phone is the number for ChannelSMS, ideally E.164 ("+49...");
	// spaces, dashes and a leading "00" are tolerated.
	Phone string `json:"phone,omitempty"`
}

// Message is one notification to render and deliver.
type Message struct {
	// Key is the idempotency key: owner UID + purpose + generation, for
	// example "3f2c.../invitation/2". It must be stable across retries of the
	// same notification and different for a new one, because receivers use
	// it (as the email Message-ID basis and the HTTP Idempotency-Key header)
	// to drop duplicates. It is not secret.
	Key string
	// Template selects which message to render.
	Template TemplateName
	// To is who the message is about and, for email and SMS, who gets it.
	To Recipient
	// Data is the template data, for example "OrganizationName",
	// "InviteeName", "Link", "Code", "ExpiresAt", "ModuleKind", "ModuleName",
	// "ApplicationName", "PortalURL" and "Reason". The values of "Link",
	// "Code" and "Token" are treated as secrets: they never appear in
	// webhook text, logs or errors.
	Data map[string]any
}

// Settings is one organization's channel configuration, already resolved
// from its Secrets. A nil channel pointer means the channel is not
// configured and sends on it fail with ErrNotConfigured.
type Settings struct {
	// Organization is "namespace/name"; rate limits are kept per value.
	Organization string
	// Email configures ChannelEmail; see EmailSettingsFromSecret.
	Email *EmailSettings
	// SMS configures ChannelSMS; see SMSSettingsFromSecret.
	SMS *SMSSettings
	// Webhook configures ChannelWebhook; see WebhookSettingsFromSecret.
	Webhook *WebhookSettings
	// Limits are the organization's own send rates per channel, from its channel settings;
	// a channel it does not set uses the Dispatcher's default.
	Limits map[Channel]Limit
	// Templates holds the organization's overrides from its ConfigMap,
	// keyed by template file name (see TemplateFile). Each entry replaces
	// the embedded default of the same name.
	Templates map[string]string
}

// Notifier renders and delivers notifications. Controllers depend on this
// interface so tests can substitute a recorder.
type Notifier interface {
	// Send renders msg and delivers it on channel. It blocks while the
	// per-organization, per-channel rate limit is exhausted (queued, never
	// dropped) or until ctx ends.
	Send(ctx context.Context, s Settings, ch Channel, msg Message) error
}

// TLSMode selects how the SMTP connection is encrypted.
type TLSMode string

const (
	// TLSModeStartTLS connects in plain text and requires the server to
	// upgrade with STARTTLS before anything else is sent (usually port 587).
	TLSModeStartTLS TLSMode = "starttls"
	// TLSModeImplicit speaks TLS from the first byte (usually port 465).
	TLSModeImplicit TLSMode = "tls"
	// TLSModeNone sends everything in clear text. It exists for loopback
	// mail catchers in development; credentials are refused unless the host
	// is loopback.
	TLSModeNone TLSMode = "none"
)

// EmailSettings configures SMTP delivery for one organization.
type EmailSettings struct {
	// Host is the SMTP server; it is also the name its certificate must
	// match.
	Host string
	// Port is the SMTP port, typically 587 for STARTTLS and 465 for TLS.
	Port int
	// Username enables SMTP AUTH (PLAIN, falling back to LOGIN) when set.
	Username string
	// Password goes with Username.
	Password string
	// TLS selects STARTTLS, implicit TLS or none.
	TLS TLSMode
	// InsecureSkipVerify disables certificate verification; only for tests
	// and demos with self-signed servers.
	InsecureSkipVerify bool
	// RootCAs verifies the server certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// From is the sender, optionally with a display name
	// ("Roster <noreply@example.com>").
	From string
	// DKIM, when set, signs every mail; nil sends unsigned mail.
	DKIM *DKIMSettings
}

// DKIMSettings sign outgoing mail with DKIM (RFC 6376), so receivers can
// tell the mail really comes from the sender's domain and do not file it
// as spam. The public key is published by the organization in DNS at
// <Selector>._domainkey.<Domain>.
type DKIMSettings struct {
	// Domain is the signing domain (d=), normally the From address's.
	Domain string
	// Selector picks the public key record (s=).
	Selector string
	// Key is the private key: *rsa.PrivateKey or ed25519.PrivateKey. It is
	// never printed; see EmailSettings.String.
	Key crypto.Signer
}

// String names the key's DNS record and hides the key itself.
func (d DKIMSettings) String() string {
	return fmt.Sprintf("DKIMSettings{Domain:%s Selector:%s Key:%s}", d.Domain, d.Selector, mask(fmt.Sprintf("%T", d.Key)))
}

// GoString hides the key from %#v as well.
func (d DKIMSettings) GoString() string { return d.String() }

// String hides the password and the DKIM key so settings can be logged or
// printed in test failures without leaking them.
func (e EmailSettings) String() string {
	dkim := ""
	if e.DKIM != nil {
		dkim = e.DKIM.Selector + "._domainkey." + e.DKIM.Domain
	}
	return fmt.Sprintf("EmailSettings{Host:%s Port:%d Username:%s Password:%s TLS:%s InsecureSkipVerify:%t CustomCA:%t From:%s DKIM:%s}",
		e.Host, e.Port, e.Username, mask(e.Password), e.TLS, e.InsecureSkipVerify, e.RootCAs != nil, e.From, dkim)
}

// GoString hides the password from %#v as well.
func (e EmailSettings) GoString() string { return e.String() }

// SMSSettings configures the SMS provider's HTTP API for one organization.
type SMSSettings struct {
	// URL receives the JSON POST. It may itself contain a secret path, so
	// it is never included in errors.
	URL string
	// Token is sent as a bearer token when set.
	Token string
	// Username and Password are sent as HTTP basic auth when Username is set.
	Username string
	// Password goes with Username.
	Password string
	// From is the sender id shown to the recipient, if the provider allows.
	From string
}

// String hides the URL, token and password.
func (s SMSSettings) String() string {
	return fmt.Sprintf("SMSSettings{URL:%s Token:%s Username:%s Password:%s From:%s}",
		mask(s.URL), mask(s.Token), s.Username, mask(s.Password), s.From)
}

// GoString hides secrets from %#v as well.
func (s SMSSettings) GoString() string { return s.String() }

// WebhookSettings configures the admin webhook for one organization.
type WebhookSettings struct {
	// URL receives the JSON POST. Slack-style webhook URLs are secrets
	// themselves, so it is never included in errors.
	URL string
	// SigningKey is the HMAC-SHA256 key for the X-Roster-Signature header.
	SigningKey []byte
}

// String hides the URL and the signing key.
func (w WebhookSettings) String() string {
	return fmt.Sprintf("WebhookSettings{URL:%s SigningKey:%s}", mask(w.URL), mask(string(w.SigningKey)))
}

// GoString hides secrets from %#v as well.
func (w WebhookSettings) GoString() string { return w.String() }

func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return "[redacted]"
}
