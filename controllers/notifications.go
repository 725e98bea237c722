package controllers

import (
	"context"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/metrics"
	"github.com/roster-dev/roster/internal/notify"
)

// Delivery states as status.deliveries records them.
const (
	DeliverySending = "Sending"
	DeliverySent    = "Sent"
	DeliveryFailed  = "Failed"
)

// maxDeliveries bounds status.deliveries; older settled records go first. Keys only grow
// (they carry a generation or counter), so a pruned key is never asked for again.
const maxDeliveries = 16

// notificationSettings resolves an organization's channels; the portal reads them the same
// way, through notify.ForOrganization.
func notificationSettings(ctx context.Context, c client.Reader, org *rosterv1.Organization) (notify.Settings, error) {
	return notify.ForOrganization(ctx, c, org)
}

// Notifications is what a reconciler that sends notifications needs.
type Notifications struct {
	// Notifier delivers the messages.
	Notifier notify.Notifier
	// APIReader reads past the cache, to check a message is still due before sending it.
	APIReader client.Reader
	// RetryBackoff is the wait before retrying a failed delivery; notify.Backoff when nil.
	RetryBackoff func(attempt int) time.Duration
	// Retries holds each failed delivery back until its backoff has passed; without it, the
	// watch event of a pass's own status write would bring the next attempt forward at once.
	Retries *RetryGate
}

func (d Notifications) outbox(c clock.PassiveClock) outbox {
	return outbox{notifier: d.Notifier, clock: c, reader: d.APIReader, backoff: d.RetryBackoff, retries: d.Retries}
}

// RetryGate remembers, in memory, when each failed delivery may be tried again. A restarted
// manager forgets, and tries each once at once: the backoff is for a server's sake, not a
// promise.
type RetryGate struct {
	mu   sync.Mutex
	next map[string]time.Time
}

// NewRetryGate returns an empty gate.
func NewRetryGate() *RetryGate { return &RetryGate{next: map[string]time.Time{}} }

// wait is how long the delivery under key must still wait.
func (g *RetryGate) wait(key string) time.Duration {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return time.Until(g.next[key])
}

// after holds the delivery under key back for d; d <= 0 lets it go.
func (g *RetryGate) after(key string, d time.Duration) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if d <= 0 {
		delete(g.next, key)
		return
	}
	g.next[key] = time.Now().Add(d)
}

// outbox keeps an object's status.deliveries: a message is recorded as Sending before it is
// handed to a channel and as Sent or Failed after. A manager that dies in between finds the
// Sending record and sends again under the same key, so a message is never lost and a
// receiver that honours the key (Message-ID, Idempotency-Key) drops the duplicate.
type outbox struct {
	notifier notify.Notifier
	clock    clock.PassiveClock
	// reader reads past the cache: see due.
	reader client.Reader
	// backoff is the wait before retry n of a transient failure; notify.Backoff by default.
	backoff func(attempt int) time.Duration
	// retries holds failed deliveries back until their backoff passed.
	retries *RetryGate
}

// withDeliveries is a kind that keeps delivery records.
type withDeliveries interface {
	client.Object
	GetDeliveries() *[]rosterv1.Delivery
}

// due reports whether the delivery under key still waits to be sent, as the API server
// has it. The cache can lag behind the write that recorded a send, and a pass that read
// the lagging copy would send again; sending is the one step that cannot be undone, so
// it is checked against the source.
func (o outbox) due(ctx context.Context, obj withDeliveries, key string) (bool, error) {
	fresh, ok, err := latest(ctx, o.reader, obj)
	if err != nil || !ok {
		return false, err
	}
	for _, d := range *fresh.GetDeliveries() {
		if d.Key == key {
			return d.State == DeliverySending, nil
		}
	}
	return false, nil
}

// record returns the delivery for key, adding a Sending record when there is none. added
// tells the caller to let the record be written before it sends.
func (o outbox) record(list *[]rosterv1.Delivery, key string, ch notify.Channel) (d *rosterv1.Delivery, added bool) {
	for i := range *list {
		if (*list)[i].Key == key {
			return &(*list)[i], false
		}
	}
	prune(list)
	now := metav1.NewTime(o.clock.Now().UTC().Truncate(time.Second))
	*list = append(*list, rosterv1.Delivery{Channel: string(ch), Key: key, State: DeliverySending, At: &now})
	return &(*list)[len(*list)-1], true
}

// prune drops the oldest settled records to make room for one more.
func prune(list *[]rosterv1.Delivery) {
	for len(*list) >= maxDeliveries {
		i := 0
		for j, d := range *list {
			if d.State != DeliverySending {
				i = j
				break
			}
		}
		*list = append((*list)[:i], (*list)[i+1:]...)
	}
}

// send hands a Sending delivery to its channel and records the outcome. It returns how long
// to wait before the next attempt when the failure is worth retrying, or when the channel
// was busy and nothing was attempted (the record is then unchanged); a permanent failure
// returns the error and is never retried.
// created is when the object the message is about was created, for the time-to-delivery
// metric.
func (o outbox) send(ctx context.Context, d *rosterv1.Delivery, s notify.Settings, msg notify.Message, created time.Time) (retryAfter time.Duration, permanent error) {
	if d.State != DeliverySending {
		return 0, nil
	}
	if wait := o.retries.wait(d.Key); wait > 0 {
		return wait, nil // not yet: the last attempt's backoff has not passed
	}
	err := o.notifier.Send(ctx, s, notify.Channel(d.Channel), msg)
	if after, busy := notify.Busy(err); busy {
		// Not attempted: the organization's channel is at its rate or has sends in
		// flight. Come back then; the worker serves other organizations meanwhile.
		return after, nil
	}
	now := metav1.NewTime(o.clock.Now().UTC().Truncate(time.Second))
	d.At = &now
	d.Attempts++
	result := metrics.ResultSent
	if err != nil {
		result = metrics.ResultFailed
	}
	metrics.Delivered(d.Channel, result, created)
	switch {
	case err == nil:
		d.State, d.Error = DeliverySent, ""
		o.retries.after(d.Key, 0)
		return 0, nil
	case notify.IsPermanent(err):
		o.retries.after(d.Key, 0)
		d.State, d.Error = DeliveryFailed, truncate(err.Error())
		return 0, err
	default:
		d.Error = truncate(err.Error())
		backoff := o.backoff
		if backoff == nil {
			backoff = notify.Backoff
		}
		wait := backoff(int(d.Attempts) - 1)
		o.retries.after(d.Key, wait)
		return wait, nil
	}
}

// queue records a message to send under key unless it was recorded before; flush sends it.
func (o outbox) queue(obj withDeliveries, key string, ch notify.Channel) {
	o.record(obj.GetDeliveries(), key, ch)
}

// flush sends the recorded messages that wait, oldest first, and stops at the first that
// must be retried, so that one person's messages arrive in the order they were recorded.
// build renders the message of a record. It returns when to try again, if anything waits.
func (o outbox) flush(ctx context.Context, obj withDeliveries, s notify.Settings, build func(rosterv1.Delivery) notify.Message,
	failed func(rosterv1.Delivery, error)) (time.Duration, error) {
	for i := range *obj.GetDeliveries() {
		d := &(*obj.GetDeliveries())[i]
		if d.State != DeliverySending {
			continue
		}
		due, err := o.due(ctx, obj, d.Key)
		if err != nil {
			return 0, err
		}
		if !due {
			// Recorded in this pass, or the cache is behind: the status write brings us back.
			return time.Second, nil
		}
		retry, permanent := o.send(ctx, d, s, build(*d), obj.GetCreationTimestamp().Time)
		if permanent != nil {
			failed(*d, permanent)
			continue
		}
		if retry > 0 {
			return retry, nil
		}
	}
	return 0, nil
}

// keyPurpose is the purpose part of a delivery key "<uid>/<purpose>/<n>".
func keyPurpose(key string) string {
	parts := strings.Split(key, "/")
	if len(parts) < 3 {
		return ""
	}
	return parts[len(parts)-2]
}

func truncate(s string) string {
	if len(s) > 1000 {
		return s[:1000]
	}
	return s
}
