package portal

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/roster-dev/roster/internal/netrange"
)

func proxies(t *testing.T, cidrs string) netrange.List {
	t.Helper()
	var l netrange.List
	if err := l.Set(cidrs); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestClientIP(t *testing.T) {
	ingress := proxies(t, "10.0.0.0/8,fd00::/8")
	cases := []struct {
		name, peer string
		xff        []string
		trusted    netrange.List
		want       string
	}{
		{name: "no proxy configured: the peer, whatever the header says", peer: "203.0.113.7:5555", xff: []string{"198.51.100.1"}, want: "203.0.113.7"},
		{name: "a peer that is no trusted proxy cannot speak for others", peer: "203.0.113.7:5555", xff: []string{"198.51.100.1"}, trusted: ingress, want: "203.0.113.7"},
		{name: "through the ingress: the address it saw", peer: "10.1.2.3:4444", xff: []string{"198.51.100.1"}, trusted: ingress, want: "198.51.100.1"},
		{name: "a client's own X-Forwarded-For entries are not believed", peer: "10.1.2.3:4444", xff: []string{"1.2.3.4, 5.6.7.8, 198.51.100.1"}, trusted: ingress, want: "198.51.100.1"},
		{name: "two trusted hops", peer: "10.1.2.3:4444", xff: []string{"1.2.3.4, 198.51.100.1, 10.9.9.9"}, trusted: ingress, want: "198.51.100.1"},
		{name: "headers repeated: read as one list", peer: "10.1.2.3:4444", xff: []string{"1.2.3.4", "198.51.100.1, 10.9.9.9"}, trusted: ingress, want: "198.51.100.1"},
		{name: "garbage where the client wrote: the last good hop", peer: "10.1.2.3:4444", xff: []string{"<script>, 198.51.100.1"}, trusted: ingress, want: "198.51.100.1"},
		{name: "garbage from the proxy: the proxy", peer: "10.1.2.3:4444", xff: []string{"unknown"}, trusted: ingress, want: "10.1.2.3"},
		{name: "no header through the ingress: the ingress", peer: "10.1.2.3:4444", trusted: ingress, want: "10.1.2.3"},
		{name: "IPv6 clients count by their /64", peer: "[2001:db8:1:2:aaaa::1]:443", want: "2001:db8:1:2::/64"},
		{name: "IPv6 through an IPv6 ingress", peer: "[fd00::1]:443", xff: []string{"2001:db8:1:2:bbbb::9"}, trusted: ingress, want: "2001:db8:1:2::/64"},
		{name: "an IPv4-mapped peer is IPv4", peer: "[::ffff:203.0.113.7]:1", want: "203.0.113.7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = c.peer
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientIP(r, c.trusted); got != c.want {
				t.Fatalf("clientIP = %q, want %q", got, c.want)
			}
		})
	}
}

// TestRateLimitPerClientBehindIngress: behind the ingress each client has its own budget,
// and a client cannot buy a new one by writing X-Forwarded-For itself.
func TestRateLimitPerClientBehindIngress(t *testing.T) {
	s, err := New(Config{Namespace: "roster-system", Key: []byte(strings.Repeat("k", 32)), Limits: Limits{PerIP: 3, PerSecret: 100},
		TrustedProxies: proxies(t, "10.0.0.0/8")})
	if err != nil {
		t.Fatal(err)
	}
	get := func(xff string) int {
		r := httptest.NewRequest(http.MethodGet, "/invite/not-a-token", nil)
		r.RemoteAddr = "10.0.0.5:40000"
		r.Header.Set("X-Forwarded-For", xff)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		return rec.Code
	}
	for i := range 3 {
		if code := get("forged-" + string(rune('a'+i)) + ", 198.51.100.1"); code == http.StatusTooManyRequests {
			t.Fatalf("request %d of 3 refused", i+1)
		}
	}
	if code := get("192.0.2.99, 198.51.100.1"); code != http.StatusTooManyRequests {
		t.Fatalf("a fourth request from 198.51.100.1 with a forged entry answers %d, want 429", code)
	}
	if code := get("198.51.100.2"); code == http.StatusTooManyRequests {
		t.Fatal("another client behind the same ingress is refused: the limit sees only the ingress")
	}
}
