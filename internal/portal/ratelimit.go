package portal

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/roster-dev/roster/internal/netrange"
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

// clientIP is the address a request's rate is counted against. It is the peer address,
// unless the peer is one of the trusted proxies (the ingress in front of the portal): then
// X-Forwarded-For is read from the right, past every trusted proxy, to the first address
// none of them vouches for. Entries further left are the client's own to write, so they
// are never believed. An IPv6 client is counted by its /64, the block one home or phone
// usually holds, so that walking through its addresses buys no new budget.
func clientIP(r *http.Request, trusted netrange.List) string {
	peer, ok := addrOf(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if len(trusted) > 0 && trusted.Contains(peer) {
		hops := r.Header.Values("X-Forwarded-For")
	walk:
		for i := len(hops) - 1; i >= 0; i-- {
			parts := strings.Split(hops[i], ",")
			for j := len(parts) - 1; j >= 0; j-- {
				a, ok := addrOf(strings.TrimSpace(parts[j]))
				if !ok {
					break walk // garbage from here on: the last proxy's word stands
				}
				peer = a
				if !trusted.Contains(a) {
					break walk
				}
			}
		}
	}
	if peer.Is6() {
		return netip.PrefixFrom(peer, 64).Masked().String()
	}
	return peer.String()
}

// addrOf reads an address with or without a port.
func addrOf(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err == nil
}
