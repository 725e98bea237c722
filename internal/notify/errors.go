/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ErrNotConfigured reports that the organization has no settings for the
// requested channel. It is permanent: retrying cannot help until the
// organization's Secret changes, which triggers a new reconcile anyway.
var ErrNotConfigured = errors.New("channel not configured")

// Error is a failed render or delivery. Its text is safe for Kubernetes
// status: credentials, URLs of the channel endpoints, links and codes have
// been removed from it.
type Error struct {
	// Channel is where delivery was attempted.
	Channel Channel
	// Permanent is true when retrying the same message with the same
	// settings cannot succeed.
	Permanent bool
	// Code is the SMTP reply code or HTTP status the server answered with,
	// or 0 when no answer was received.
	Code int
	// RetryAfter is the delay an HTTP server asked for with Retry-After on
	// a 429 or 503, or 0. Callers should wait at least this long.
	RetryAfter time.Duration

	msg   string
	cause error
}

// Error returns the redacted description.
func (e *Error) Error() string { return e.msg }

// Unwrap exposes the cause so errors.Is works for ErrNotConfigured and
// context errors. The cause's own text is not redacted; use Error() for
// anything that is shown to users.
func (e *Error) Unwrap() error { return e.cause }

// IsPermanent reports whether err should not be retried: SMTP 5xx replies,
// HTTP 4xx other than 408 and 429, invalid or missing recipients, template
// errors and unconfigured channels. Everything else, including context
// cancellation, is transient.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Permanent
	}
	return errors.Is(err, ErrNotConfigured)
}

func permanentf(ch Channel, cause error, format string, args ...any) *Error {
	return &Error{Channel: ch, Permanent: true, msg: prefix(ch) + fmt.Sprintf(format, args...), cause: cause}
}

func transientf(ch Channel, cause error, format string, args ...any) *Error {
	return &Error{Channel: ch, msg: prefix(ch) + fmt.Sprintf(format, args...), cause: cause}
}

func prefix(ch Channel) string {
	if ch == "" {
		return ""
	}
	return string(ch) + ": "
}

// redactor removes known secret values from text. It is applied to every
// error leaving the package, as a second line of defence behind building
// messages without secrets in the first place: servers and libraries may
// echo what they were sent.
type redactor struct {
	secrets []string
}

const redacted = "[redacted]"

func newRedactor(secrets ...string) redactor {
	var r redactor
	for _, s := range secrets {
		if s = strings.TrimSpace(s); s != "" {
			r.secrets = append(r.secrets, s)
		}
	}
	// Longest first, so a secret that contains another is removed whole.
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	return r
}

func (r redactor) apply(text string) string {
	for _, s := range r.secrets {
		text = strings.ReplaceAll(text, s, redacted)
	}
	return text
}

// scrub turns any error into an *Error whose text has passed through r.
// Unknown errors are transient: they come from networks and timeouts.
func (r redactor) scrub(ch Channel, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		c := *e
		c.msg = r.apply(c.msg)
		return &c
	}
	return &Error{Channel: ch, Permanent: errors.Is(err, ErrNotConfigured), msg: r.apply(prefix(ch) + err.Error()), cause: err}
}
