package portal

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits are the rates the portal allows, per client address and per secret (link token,
// login or code subject). They are kept in each replica's memory: a limit is a brake on
// guessing, not a record, so n replicas allow up to n times the rate. What must hold across
// replicas (five tries per code, one code per 30 seconds) is counted in the API server.
type Limits struct {
	// PerIP is how many guarded requests (opening links, door numbers, sign-ins, codes) one
	// address may make a minute.
	PerIP int
	// PerSecret is how many a minute may name one link, login or code.
	PerSecret int
}

// DefaultLimits suit people: a person opens a link, types a code or signs in a few times
// a minute, not dozens.
func DefaultLimits() Limits { return Limits{PerIP: 30, PerSecret: 10} }

// limiter is a token bucket per key, forgetting keys idle for ten minutes.
type limiter struct {
	perMinute int
	mu        sync.Mutex
	buckets   map[string]*bucket
	swept     time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(perMinute int) *limiter {
	return &limiter{perMinute: perMinute, buckets: map[string]*bucket{}}
}

func (l *limiter) allow(key string) bool {
	if l.perMinute <= 0 {
		return true
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > 10*time.Minute {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(float64(l.perMinute)/60), l.perMinute)}
		l.buckets[key] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

// clientIP is the peer address. Behind a proxy every request has the proxy's address; the
// proxy then limits per client itself.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
