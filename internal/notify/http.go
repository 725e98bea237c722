/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// HTTP headers of SMS and webhook requests.
const (
	// HeaderIdempotencyKey carries Message.Key so providers and receivers
	// can drop the duplicates that retries produce.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderTimestamp is the Unix time in seconds the webhook was signed
	// at; receivers should reject old timestamps to stop replays.
	HeaderTimestamp = "X-Roster-Timestamp"
	// HeaderSignature is "sha256=" followed by the hex HMAC-SHA256 of
	// "<timestamp>.<body>" under the organization's signing key.
	HeaderSignature = "X-Roster-Signature"
)

// SMSPayload is the JSON body posted to the SMS provider.
type SMSPayload struct {
	// To is the recipient in E.164 form, e.g. "+4915112345678".
	To string `json:"to"`
	// From is the sender id from the Secret, omitted when not set.
	From string `json:"from,omitempty"`
	// Text is the rendered SMS part.
	Text string `json:"text"`
}

// WebhookPayload is the JSON body posted to an organization's webhook.
// Text makes it a valid Slack incoming-webhook message; the other fields
// let custom receivers act on the event.
type WebhookPayload struct {
	// Text is the rendered webhook part, shown by Slack as the message.
	Text string `json:"text"`
	// Event is the template name, e.g. "approval-needed".
	Event TemplateName `json:"event"`
	// Key is Message.Key, also sent as the Idempotency-Key header.
	Key string `json:"key"`
	// Recipient is who the notification is about.
	Recipient Recipient `json:"recipient"`
}

// Sign returns the X-Roster-Signature value for a webhook body sent at
// timestamp (Unix seconds, as sent in X-Roster-Timestamp).
func Sign(signingKey []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, signingKey)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature reports whether header is a valid X-Roster-Signature for
// body and timestamp under signingKey. It compares in constant time. It
// does not judge the timestamp's age; receivers decide their own window.
func VerifySignature(signingKey []byte, timestamp string, body []byte, header string) bool {
	got, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return false
	}
	gotMAC, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	want, _ := hex.DecodeString(strings.TrimPrefix(Sign(signingKey, timestamp, body), "sha256="))
	return hmac.Equal(gotMAC, want)
}

var phoneSeparators = strings.NewReplacer(" ", "", "-", "", "(", "", ")", "", ".", "", "/", "")

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// normalizePhone accepts common human spellings ("+49 151 1234-5678",
// "0049...") and returns E.164, which SMS APIs expect.
func normalizePhone(p string) (string, bool) {
	p = phoneSeparators.Replace(strings.TrimSpace(p))
	if strings.HasPrefix(p, "00") {
		p = "+" + p[2:]
	}
	return p, e164.MatchString(p)
}

func (d *Dispatcher) sendSMS(ctx context.Context, s *SMSSettings, msg Message, r Rendered) error {
	const ch = ChannelSMS
	if err := checkRecipient(ch, msg.To); err != nil {
		return err
	}
	to, _ := normalizePhone(msg.To.Phone)
	body, err := json.Marshal(SMSPayload{To: to, From: s.From, Text: r.SMS})
	if err != nil {
		return permanentf(ch, err, "encoding request: %v", err)
	}
	return d.post(ctx, ch, s.URL, body, func(h *http.Request) {
		h.Header.Set(HeaderIdempotencyKey, msg.Key)
		switch {
		case s.Token != "":
			h.Header.Set("Authorization", "Bearer "+s.Token)
		case s.Username != "":
			h.SetBasicAuth(s.Username, s.Password)
		}
	})
}

func (d *Dispatcher) sendWebhook(ctx context.Context, s *WebhookSettings, msg Message, r Rendered) error {
	const ch = ChannelWebhook
	body, err := json.Marshal(WebhookPayload{Text: r.Webhook, Event: msg.Template, Key: msg.Key, Recipient: msg.To})
	if err != nil {
		return permanentf(ch, err, "encoding request: %v", err)
	}
	ts := strconv.FormatInt(d.opts.Now().Unix(), 10)
	sig := Sign(s.SigningKey, ts, body)
	return d.post(ctx, ch, s.URL, body, func(h *http.Request) {
		h.Header.Set(HeaderIdempotencyKey, msg.Key)
		h.Header.Set(HeaderTimestamp, ts)
		h.Header.Set(HeaderSignature, sig)
	})
}

// maxDrain bounds how much of a response body is read so the connection
// can be reused; the body itself is never looked at (providers echo the
// request, which contains links and codes).
const maxDrain = 64 << 10

func (d *Dispatcher) post(ctx context.Context, ch Channel, target string, body []byte, decorate func(*http.Request)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		// The URL was validated when the Secret was parsed; do not quote
		// it, Slack-style URLs embed a secret.
		return permanentf(ch, nil, "invalid endpoint URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Roster")
	decorate(req)

	resp, err := d.opts.HTTPClient.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return transientf(ch, ctxErr, "request: %v", ctxErr)
		}
		// *url.Error quotes the full URL; keep only what went wrong.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		var denied *DeniedAddressError
		if errors.As(err, &denied) {
			return permanentf(ch, err, "request failed: %v", denied)
		}
		return transientf(ch, err, "request failed: %s", shorten(err.Error()))
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))

	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	e := transientf(ch, nil, "endpoint responded %d %s", code, http.StatusText(code))
	e.Code = code
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), d.opts.Now())
	default:
		// 3xx (redirects are not followed, see defaultHTTPClient) and 4xx:
		// the request or the settings are wrong; resending will not help.
		e.Permanent = true
	}
	return e
}

// retryAfter parses Retry-After as seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// defaultHTTPClient does not follow redirects: a redirect would replay the
// signed body and credentials to another URL, and a provider that moved
// should be reconfigured, not silently followed.
func defaultHTTPClient(timeout time.Duration, guard addressGuard) *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil // a proxy would dial for us, past the guard
	transport.DialContext = guard.dialer(timeout).DialContext
	return &http.Client{
		Timeout:   timeout,
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
