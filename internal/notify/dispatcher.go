/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
)

// Limit is a token bucket: Rate sends per second on average, Burst at once.
type Limit struct {
	// Rate is the sustained number of sends per second; rate.Inf disables
	// limiting.
	Rate rate.Limit
	// Burst is how many sends may go out at once after a quiet period.
	Burst int
}

// DefaultLimits are the per-organization, per-channel limits used for
// channels DispatcherOptions.Limits does not mention. They keep one
// organization's bulk invitation from tripping a shared relay's or SMS
// provider's abuse protection.
func DefaultLimits() map[Channel]Limit {
	return map[Channel]Limit{
		ChannelEmail:   {Rate: 10, Burst: 20},
		ChannelSMS:     {Rate: 1, Burst: 5},
		ChannelWebhook: {Rate: 5, Burst: 10},
		ChannelLog:     {Rate: rate.Inf, Burst: 1},
	}
}

// Defaults for DispatcherOptions.
const (
	// DefaultSMTPTimeout bounds connecting and each SMTP command.
	DefaultSMTPTimeout = 30 * time.Second
	// DefaultHTTPTimeout bounds a whole SMS or webhook request.
	DefaultHTTPTimeout = 15 * time.Second
)

// DispatcherOptions configures a Dispatcher. The zero value is usable.
type DispatcherOptions struct {
	// Limits overrides DefaultLimits per channel. A Rate <= 0 falls back to
	// the default rate and a Burst < 1 to 1, since either would block
	// sends forever.
	Limits map[Channel]Limit
	// HTTPClient sends SMS and webhook requests. The default has a
	// DefaultHTTPTimeout timeout, does not follow redirects, and connects only
	// to addresses the guard allows; a client given here is used as it is.
	HTTPClient *http.Client
	// Allow are address ranges channels may connect to although they are
	// internal (loopback, link-local, private). By default none: a tenant's
	// settings cannot make Roster reach into the cluster or the cloud's
	// metadata service.
	Allow []netip.Prefix
	// SMTPTimeout bounds connecting and each SMTP command; default
	// DefaultSMTPTimeout.
	SMTPTimeout time.Duration
	// Logger receives ChannelLog messages and a V(1) line per delivery.
	// The default discards.
	Logger logr.Logger
	// Now is the clock for webhook timestamps; default time.Now.
	Now func() time.Time
}

// Dispatcher is the production Notifier. It is safe for concurrent use.
type Dispatcher struct {
	opts DispatcherOptions
	log  LogNotifier

	mu       sync.Mutex
	limiters map[limiterKey]*rate.Limiter
	// inflight counts the sends under way per organization and channel: one organization's
	// slow server holds at most MaxInFlight of the callers' workers.
	inflight map[limiterKey]int
}

// MaxInFlight is how many sends of one organization on one channel may be under way at once.
// A server that accepts connections and never answers then holds at most this many of the
// controllers' workers; the organization's other sends are told to come back later.
const MaxInFlight = 2

// BusyError says a send was not attempted because the organization's channel is at its rate
// limit or already has MaxInFlight sends under way. The caller retries after After; nothing
// was sent and no attempt is used up.
type BusyError struct {
	// Channel is the busy channel.
	Channel Channel
	// After is when to try again.
	After time.Duration
	// Reason says why: "rate limit" or "sends in flight".
	Reason string
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s; trying again in %s", e.Reason, e.After.Round(time.Millisecond))
}

// Busy reports whether err says to come back later, and when.
func Busy(err error) (time.Duration, bool) {
	var b *BusyError
	if errors.As(err, &b) {
		return b.After, true
	}
	return 0, false
}

type limiterKey struct {
	organization string
	channel      Channel
}

var (
	_ Notifier = (*Dispatcher)(nil)
	_ Notifier = LogNotifier{}
)

// NewDispatcher returns a Dispatcher with defaults filled in.
func NewDispatcher(opts DispatcherOptions) *Dispatcher {
	limits := DefaultLimits()
	for ch, l := range opts.Limits {
		if l.Rate <= 0 {
			l.Rate = limits[ch].Rate
			if l.Rate <= 0 {
				l.Rate = rate.Inf
			}
		}
		if l.Burst < 1 {
			l.Burst = 1
		}
		limits[ch] = l
	}
	opts.Limits = limits
	if opts.SMTPTimeout <= 0 {
		opts.SMTPTimeout = DefaultSMTPTimeout
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = defaultHTTPClient(DefaultHTTPTimeout, addressGuard{allow: opts.Allow})
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Dispatcher{
		opts:     opts,
		log:      LogNotifier{Logger: opts.Logger},
		limiters: map[limiterKey]*rate.Limiter{},
		inflight: map[limiterKey]int{},
	}
}

// Send implements Notifier. Checks that cannot succeed on retry
// (unconfigured channel, bad recipient, broken template) happen before
// waiting for the rate limit, so they neither consume tokens nor wait.
func (d *Dispatcher) Send(ctx context.Context, s Settings, ch Channel, msg Message) error {
	r := newRedactor(append(secretValues(msg), settingsSecrets(s)...)...)
	return r.scrub(ch, d.send(ctx, s, ch, msg))
}

func (d *Dispatcher) send(ctx context.Context, s Settings, ch Channel, msg Message) error {
	if err := validateKey(msg.Key); err != nil {
		return permanentf(ch, nil, "%v", err)
	}
	if ch == ChannelLog {
		release, err := d.take(s, ch)
		if err != nil {
			return err
		}
		defer release()
		return d.log.Send(ctx, s, ch, msg)
	}

	// Only the parts the channel uses are rendered, so a broken override
	// of another channel's part does not block this one.
	var deliver func(Rendered) error
	var want []Part
	switch ch {
	case ChannelEmail:
		if s.Email == nil {
			return notConfigured(ch)
		}
		deliver = func(r Rendered) error { return d.sendEmail(ctx, s.Email, msg, r) }
		want = []Part{PartSubject, PartText, PartHTML}
	case ChannelSMS:
		if s.SMS == nil {
			return notConfigured(ch)
		}
		deliver = func(r Rendered) error { return d.sendSMS(ctx, s.SMS, msg, r) }
		want = []Part{PartSMS}
	case ChannelWebhook:
		if s.Webhook == nil {
			return notConfigured(ch)
		}
		deliver = func(r Rendered) error { return d.sendWebhook(ctx, s.Webhook, msg, r) }
		want = []Part{PartWebhook}
	default:
		return permanentf(ch, nil, "unknown channel %q", ch)
	}
	if err := checkRecipient(ch, msg.To); err != nil {
		return err
	}

	rendered, err := render(s, msg, want...)
	if err != nil {
		return withChannel(ch, err)
	}
	release, err := d.take(s, ch)
	if err != nil {
		return err
	}
	defer release()
	if err := deliver(rendered); err != nil {
		return err
	}
	d.opts.Logger.V(1).Info("notification delivered", "organization", s.Organization,
		"channel", ch, "template", msg.Template, "key", msg.Key)
	return nil
}

// take reserves a send on the organization's channel without waiting: when the rate limit
// or the sends in flight say not now, it returns a *BusyError with the delay, so that the
// caller's worker is free for other organizations meanwhile. release ends the send.
func (d *Dispatcher) take(s Settings, ch Channel) (release func(), err error) {
	k := limiterKey{organization: s.Organization, channel: ch}
	l := d.limiter(s, ch)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inflight[k] >= MaxInFlight {
		return nil, &BusyError{Channel: ch, After: time.Second, Reason: "sends in flight"}
	}
	r := l.Reserve()
	if !r.OK() {
		return nil, &BusyError{Channel: ch, After: time.Second, Reason: "rate limit"}
	}
	if delay := r.Delay(); delay > 0 {
		r.Cancel()
		return nil, &BusyError{Channel: ch, After: delay, Reason: "rate limit"}
	}
	d.inflight[k]++
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.inflight[k]--
	}, nil
}

// limiter is the organization's token bucket for a channel, at the organization's own rate
// where its settings give one.
func (d *Dispatcher) limiter(s Settings, ch Channel) *rate.Limiter {
	k := limiterKey{organization: s.Organization, channel: ch}
	lim, known := s.Limits[ch]
	if !known || lim.Rate <= 0 {
		if lim, known = d.opts.Limits[ch]; !known {
			lim = Limit{Rate: rate.Inf, Burst: 1}
		}
	}
	if lim.Burst < 1 {
		lim.Burst = 1
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.limiters[k]
	if !ok {
		l = rate.NewLimiter(lim.Rate, lim.Burst)
		d.limiters[k] = l
	} else if l.Limit() != lim.Rate || l.Burst() != lim.Burst {
		l.SetLimit(lim.Rate)
		l.SetBurst(lim.Burst)
	}
	return l
}

// Forget drops the rate limiters of an organization, so a deleted
// organization's state does not accumulate. A later send recreates them
// with a full bucket.
func (d *Dispatcher) Forget(organization string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k := range d.limiters {
		if k.organization == organization {
			delete(d.limiters, k)
		}
	}
}

func notConfigured(ch Channel) error {
	return permanentf(ch, ErrNotConfigured, "%v", ErrNotConfigured)
}

// withChannel attributes a render error to the channel it was rendered for.
func withChannel(ch Channel, err error) error {
	if e, ok := err.(*Error); ok && e.Channel == "" {
		c := *e
		c.Channel = ch
		c.msg = prefix(ch) + c.msg
		return &c
	}
	return err
}

// checkRecipient rejects recipients a channel cannot deliver to. The
// channels check again; doing it here as well keeps hopeless sends from
// waiting for, and using up, rate-limit tokens.
func checkRecipient(ch Channel, to Recipient) error {
	switch ch {
	case ChannelEmail:
		if to.Email == "" {
			return permanentf(ch, nil, "recipient has no email address")
		}
		if _, err := mail.ParseAddress(to.Email); err != nil {
			return permanentf(ch, nil, "recipient email address is invalid")
		}
	case ChannelSMS:
		if to.Phone == "" {
			return permanentf(ch, nil, "recipient has no phone number")
		}
		if _, ok := normalizePhone(to.Phone); !ok {
			return permanentf(ch, nil, "recipient phone number is not a valid international number")
		}
	}
	return nil
}

// validateKey keeps keys usable as header values: they are written into
// email and HTTP headers verbatim.
func validateKey(key string) error {
	if key == "" {
		return fmt.Errorf("message has no idempotency key")
	}
	if len(key) > 256 {
		return fmt.Errorf("idempotency key is longer than 256 characters")
	}
	for _, c := range key {
		if c <= ' ' || c > '~' {
			return fmt.Errorf("idempotency key must be printable ASCII without spaces")
		}
	}
	return nil
}

func settingsSecrets(s Settings) []string {
	var out []string
	if s.Email != nil {
		out = append(out, s.Email.Password)
	}
	if s.SMS != nil {
		out = append(out, s.SMS.URL, s.SMS.Token, s.SMS.Password)
	}
	if s.Webhook != nil {
		out = append(out, s.Webhook.URL, string(s.Webhook.SigningKey))
	}
	return out
}
