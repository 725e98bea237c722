// Package metrics holds what Roster exports to Prometheus beside controller-runtime's own
// metrics: deliveries as they happen, and the state of organizations read from the
// manager's cache when Prometheus scrapes, so that no reconcile does counting work for it.
package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// Delivery results, the result label of roster_deliveries_total.
const (
	ResultSent   = "sent"
	ResultFailed = "failed"
)

var (
	deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roster_deliveries_total",
		Help: "Delivery attempts by channel and result (sent, or failed whether it is retried or not).",
	}, []string{"channel", "result"})
	deliverySeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "roster_delivery_seconds",
		Help:    "Time from an object's creation to its message being delivered.",
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600},
	}, []string{"channel"})

	invitationsDesc = prometheus.NewDesc("roster_invitations", "Invitations by organization and phase.",
		[]string{"namespace", "organization", "phase"}, nil)
	awaitingDesc = prometheus.NewDesc("roster_members_awaiting_approval", "Members waiting for an admin's approval.",
		[]string{"namespace", "organization"}, nil)
	seatsUsedDesc = prometheus.NewDesc("roster_seats_used", "External users holding one of an application's licensed seats.",
		[]string{"namespace", "organization", "application"}, nil)
	seatsLicensedDesc = prometheus.NewDesc("roster_seats_licensed", "An application's licensed seats.",
		[]string{"namespace", "organization", "application"}, nil)
	licenseExpiryDesc = prometheus.NewDesc("roster_license_expiry_timestamp_seconds",
		"When an application's license ends, in Unix seconds; absent for a license that does not end.",
		[]string{"namespace", "organization", "application"}, nil)
)

// Delivered records one delivery attempt's outcome; created is when the object the message
// is about was created, for the time-to-delivery histogram.
func Delivered(channel, result string, created time.Time) {
	deliveries.WithLabelValues(channel, result).Inc()
	if result == ResultSent && !created.IsZero() {
		deliverySeconds.WithLabelValues(channel).Observe(time.Since(created).Seconds())
	}
}

// state reads organizations and invitations from the cache when Prometheus scrapes.
type state struct {
	mu     sync.Mutex
	reader client.Reader
}

var (
	cluster  = &state{}
	register sync.Once
)

// Register adds Roster's metrics to controller-runtime's registry, which the manager's
// metrics endpoint serves, and reads state from reader (the manager's cache) at scrape
// time. A restarted manager in the same process calls it again with its new cache.
func Register(reader client.Reader) {
	cluster.mu.Lock()
	cluster.reader = reader
	cluster.mu.Unlock()
	register.Do(func() {
		ctrlmetrics.Registry.MustRegister(deliveries, deliverySeconds, cluster)
	})
}

// Describe implements prometheus.Collector.
func (s *state) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{invitationsDesc, awaitingDesc, seatsUsedDesc, seatsLicensedDesc, licenseExpiryDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one pass over the cached organizations and
// invitations, without copying them.
func (s *state) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	r := s.reader
	s.mu.Unlock()
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	orgs := &rosterv1.OrganizationList{}
	if err := r.List(ctx, orgs, client.UnsafeDisableDeepCopy); err == nil {
		for i := range orgs.Items {
			o := &orgs.Items[i]
			ch <- prometheus.MustNewConstMetric(awaitingDesc, prometheus.GaugeValue, float64(o.Status.Members.Pending), o.Namespace, o.Name)
			for _, a := range o.Status.Applications {
				ch <- prometheus.MustNewConstMetric(seatsUsedDesc, prometheus.GaugeValue, float64(a.SeatsUsed), o.Namespace, o.Name, a.Name)
				ch <- prometheus.MustNewConstMetric(seatsLicensedDesc, prometheus.GaugeValue, float64(a.Seats), o.Namespace, o.Name, a.Name)
			}
			for _, a := range o.Spec.Applications {
				if t := a.License.ExpiresAt; t != nil {
					ch <- prometheus.MustNewConstMetric(licenseExpiryDesc, prometheus.GaugeValue, float64(t.Unix()), o.Namespace, o.Name, a.Name)
				}
			}
		}
	}
	type key struct{ namespace, org, phase string }
	counts := map[key]int{}
	invs := &rosterv1.InvitationList{}
	if err := r.List(ctx, invs, client.UnsafeDisableDeepCopy); err == nil {
		for i := range invs.Items {
			inv := &invs.Items[i]
			phase := string(inv.Status.Phase)
			if phase == "" {
				phase = string(rosterv1.InvitationPending)
			}
			counts[key{inv.Namespace, inv.Spec.OrganizationRef.Name, phase}]++
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(invitationsDesc, prometheus.GaugeValue, float64(n), k.namespace, k.org, k.phase)
	}
}
