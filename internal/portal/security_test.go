package portal

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
)

// TestPasswordHashIsArgon2idAtTheOWASPFloor: 19 MiB, two passes, one lane, a random salt,
// and only the right password verifies.
func TestPasswordHashIsArgon2idAtTheOWASPFloor(t *testing.T) {
	h, err := hashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not carry argon2id at m=19456,t=2,p=1", h)
	}
	h2, _ := hashPassword("correct horse battery")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if !verifyPassword(h, "correct horse battery") || verifyPassword(h, "correct horse batterx") {
		t.Fatal("verification does not tell the right password from a wrong one")
	}
	weak := strings.Replace(h, "m=19456", "m=1024", 1)
	if verifyPassword(weak, "correct horse battery") {
		t.Fatal("a hash below the memory floor verifies")
	}
}

// TestHeadersAndLogs: every answer carries the security headers, and a link's token never
// reaches the log, only the route pattern.
func TestHeadersAndLogs(t *testing.T) {
	var log strings.Builder
	s, err := New(Config{Namespace: "roster-system", Key: []byte(strings.Repeat("k", 32)),
		Log: funcr.New(func(prefix, args string) { log.WriteString(prefix + args + "\n") }, funcr.Options{Verbosity: 1})})
	if err != nil {
		t.Fatal(err)
	}
	const token = "not-a-real-token-but-it-must-not-be-logged"
	for _, path := range []string{"/", "/invite/" + token, "/module/" + token, "/static/style.css"} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		h := rec.Header()
		if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") || h.Get("Referrer-Policy") != "no-referrer" ||
			h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
	if strings.Contains(log.String(), token) {
		t.Fatalf("the log holds the token: %s", log.String())
	}
	if !strings.Contains(log.String(), "GET /invite/{token}") || !strings.Contains(log.String(), "GET /module/{token}") {
		t.Fatalf("the log does not name the route: %s", log.String())
	}
}

// TestFormPostWithoutTokenIsRefused: a POST without the CSRF token, or from another origin,
// gets the refusal page.
func TestFormPostWithoutTokenIsRefused(t *testing.T) {
	s, err := New(Config{Namespace: "roster-system", Key: []byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	for name, hdr := range map[string]map[string]string{
		"no token":     {},
		"cross-origin": {"Sec-Fetch-Site": "cross-site"},
	} {
		req := httptest.NewRequest(http.MethodPost, "/door", strings.NewReader("door=12345678"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "The form has expired") {
			t.Errorf("%s: %d %s", name, rec.Code, rec.Body.String())
		}
	}
}
