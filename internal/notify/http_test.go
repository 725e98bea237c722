/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roster-dev/roster/internal/notify"
)

// recorder is an HTTP endpoint that keeps every request and answers with
// a configurable status.
type recorder struct {
	mu       sync.Mutex
	status   int
	header   http.Header
	requests []recorded
}

type recorded struct {
	method string
	path   string
	header http.Header
	body   []byte
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.requests = append(rec.requests, recorded{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body})
	status := rec.status
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	rec.mu.Unlock()
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	// Providers echo requests in error bodies; the client must not quote them.
	_, _ = w.Write(body)
}

func (rec *recorder) all() []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]recorded(nil), rec.requests...)
}

func startRecorder(t *testing.T, status int) (*recorder, *httptest.Server) {
	t.Helper()
	rec := &recorder{status: status}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return rec, srv
}

const secretPath = "/services/T000/B000/XyZsecretPath"

func TestSMSRequest(t *testing.T) {
	cases := []struct {
		name   string
		secret map[string][]byte
		check  func(*testing.T, *http.Request)
	}{{
		name:   "bearer token",
		secret: map[string][]byte{"token": []byte("tok-123\n"), "from": []byte("Roster")},
		check: func(t *testing.T, r *http.Request) {
			if got := r.Header.Get("Authorization"); got != "Bearer tok-123" {
				t.Errorf("Authorization = %q", got)
			}
		},
	}, {
		name:   "basic auth",
		secret: map[string][]byte{"username": []byte("acct"), "password": []byte(testPassword)},
		check: func(t *testing.T, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "acct" || p != testPassword {
				t.Errorf("basic auth = %q %q %t", u, p, ok)
			}
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, srv := startRecorder(t, http.StatusAccepted)
			tc.secret["url"] = []byte(srv.URL + "/v1/messages")
			sms, err := notify.SMSSettingsFromSecret(tc.secret)
			if err != nil {
				t.Fatal(err)
			}
			msg := invitation("uid-1/invitation/1")
			msg.Template = notify.TemplateInvitationSMS
			err = newDispatcher(notify.DispatcherOptions{}).Send(testCtx(t), notify.Settings{SMS: sms}, notify.ChannelSMS, msg)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			reqs := rec.all()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPost || r.path != "/v1/messages" {
				t.Errorf("request = %s %s", r.method, r.path)
			}
			if got := r.header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := r.header.Get("Idempotency-Key"); got != msg.Key {
				t.Errorf("Idempotency-Key = %q, want %q", got, msg.Key)
			}
			var p notify.SMSPayload
			if err := json.Unmarshal(r.body, &p); err != nil {
				t.Fatalf("body %s: %v", r.body, err)
			}
			if p.To != "+4915123456789" || p.From != string(tc.secret["from"]) {
				t.Errorf("payload to=%q from=%q", p.To, p.From)
			}
			if !strings.Contains(p.Text, testLink) {
				t.Errorf("SMS text %q lacks the invitation link", p.Text)
			}
			var raw map[string]any
			_ = json.Unmarshal(r.body, &raw)
			for _, k := range []string{"to", "text"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("body %s lacks %q", r.body, k)
				}
			}
			tc.check(t, &http.Request{Header: r.header})
		})
	}
}

func TestSMSRecipientChecks(t *testing.T) {
	rec, srv := startRecorder(t, http.StatusOK)
	s := notify.Settings{SMS: &notify.SMSSettings{URL: srv.URL}}
	d := newDispatcher(notify.DispatcherOptions{})
	for phone, ok := range map[string]bool{"": false, "12345": false, "+49 (151) 2345-6789": true, "0049 151 23456789": true, "+0123456789": false} {
		msg := invitation("k/1")
		msg.To.Phone = phone
		err := d.Send(testCtx(t), s, notify.ChannelSMS, msg)
		if ok && err != nil {
			t.Errorf("phone %q: %v", phone, err)
		}
		if !ok && !notify.IsPermanent(err) {
			t.Errorf("phone %q: Send = %v, want a permanent error", phone, err)
		}
	}
	if n := len(rec.all()); n != 2 {
		t.Errorf("provider got %d requests, want 2", n)
	}
}

func TestWebhookRequest(t *testing.T) {
	rec, srv := startRecorder(t, http.StatusNoContent)
	key := []byte("whsec-signing-key")
	now := time.Unix(1767225600, 0)
	d := newDispatcher(notify.DispatcherOptions{Now: func() time.Time { return now }})
	for _, name := range notify.TemplateNames() {
		msg := invitation("uid-1/" + string(name) + "/3")
		msg.Template = name
		msg.Data["Code"] = testCode
		if err := sendWhenFree(testCtx(t), d, notify.Settings{Webhook: &notify.WebhookSettings{URL: srv.URL + "/hook", SigningKey: key}}, notify.ChannelWebhook, msg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	reqs := rec.all()
	if len(reqs) != len(notify.TemplateNames()) {
		t.Fatalf("got %d requests", len(reqs))
	}
	for i, r := range reqs {
		name := notify.TemplateNames()[i]
		if r.method != http.MethodPost || r.path != "/hook" {
			t.Errorf("request = %s %s", r.method, r.path)
		}
		wantKey := "uid-1/" + string(name) + "/3"
		if got := r.header.Get(notify.HeaderIdempotencyKey); got != wantKey {
			t.Errorf("Idempotency-Key = %q, want %q", got, wantKey)
		}
		ts := r.header.Get(notify.HeaderTimestamp)
		if ts != strconv.FormatInt(now.Unix(), 10) {
			t.Errorf("timestamp = %q", ts)
		}
		sig := r.header.Get(notify.HeaderSignature)
		if !strings.HasPrefix(sig, "sha256=") || !notify.VerifySignature(key, ts, r.body, sig) {
			t.Errorf("signature %q does not verify", sig)
		}
		// Computed independently of Sign, so a change to the documented
		// scheme is caught even if Sign and VerifySignature change together.
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(ts + "." + string(r.body)))
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); sig != want {
			t.Errorf("signature = %q, want %q", sig, want)
		}
		if notify.VerifySignature([]byte("wrong-key"), ts, r.body, sig) {
			t.Error("signature verifies with the wrong key")
		}
		if notify.VerifySignature(key, "1", r.body, sig) {
			t.Error("signature verifies with another timestamp")
		}
		if notify.VerifySignature(key, ts, append([]byte(" "), r.body...), sig) {
			t.Error("signature verifies for a modified body")
		}
		var p notify.WebhookPayload
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Event != name || p.Key != wantKey || p.Recipient.Email != "jane@example.com" || p.Recipient.Name != "Jane Doe" || p.Text == "" {
			t.Errorf("payload = %+v", p)
		}
		for _, secret := range []string{testLink, "s3cr3t-t0ken", testCode} {
			if strings.Contains(string(r.body), secret) {
				t.Errorf("%s webhook body contains %q: %s", name, secret, r.body)
			}
		}
	}
}

func TestVerifySignatureRejectsMalformedHeaders(t *testing.T) {
	key, body := []byte("k"), []byte(`{"text":"x"}`)
	good := notify.Sign(key, "42", body)
	if !notify.VerifySignature(key, "42", body, good) {
		t.Fatal("own signature does not verify")
	}
	for _, h := range []string{"", strings.TrimPrefix(good, "sha256="), "sha1=" + strings.TrimPrefix(good, "sha256="), "sha256=zz", good[:len(good)-2]} {
		if notify.VerifySignature(key, "42", body, h) {
			t.Errorf("header %q verifies", h)
		}
	}
}

func TestHTTPStatusClassification(t *testing.T) {
	cases := []struct {
		status     int
		permanent  bool
		retryAfter string
		wantDelay  time.Duration
	}{
		{status: http.StatusBadRequest, permanent: true},
		{status: http.StatusUnauthorized, permanent: true},
		{status: http.StatusNotFound, permanent: true},
		{status: http.StatusFound, permanent: true},
		{status: http.StatusRequestTimeout},
		{status: http.StatusTooManyRequests, retryAfter: "30", wantDelay: 30 * time.Second},
		{status: http.StatusInternalServerError},
		{status: http.StatusServiceUnavailable, retryAfter: "Thu, 01 Jan 2026 00:02:00 GMT", wantDelay: 2 * time.Minute},
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range cases {
		for _, ch := range []notify.Channel{notify.ChannelSMS, notify.ChannelWebhook} {
			t.Run(string(ch)+"/"+strconv.Itoa(tc.status), func(t *testing.T) {
				rec, srv := startRecorder(t, tc.status)
				rec.header = http.Header{"Location": {"https://elsewhere.example/"}}
				if tc.retryAfter != "" {
					rec.header.Set("Retry-After", tc.retryAfter)
				}
				url := srv.URL + secretPath
				s := notify.Settings{
					SMS:     &notify.SMSSettings{URL: url, Token: "tok-123"},
					Webhook: &notify.WebhookSettings{URL: url, SigningKey: []byte("whsec")},
				}
				msg := invitation("k/1")
				msg.Data["Code"] = testCode
				err := newDispatcher(notify.DispatcherOptions{Now: func() time.Time { return now }}).Send(testCtx(t), s, ch, msg)
				if err == nil {
					t.Fatal("Send succeeded")
				}
				if got := notify.IsPermanent(err); got != tc.permanent {
					t.Errorf("IsPermanent(%q) = %t, want %t", err, got, tc.permanent)
				}
				var e *notify.Error
				if !errors.As(err, &e) || e.Code != tc.status || e.RetryAfter != tc.wantDelay || e.Channel != ch {
					t.Errorf("error = %#v, want code %d, retry after %s", err, tc.status, tc.wantDelay)
				}
				assertNoSecrets(t, err, "XyZsecretPath", "tok-123", "whsec", testLink, "s3cr3t-t0ken", testCode)
				if n := len(rec.all()); n != 1 {
					t.Errorf("endpoint got %d requests, want exactly 1 (no redirects followed)", n)
				}
			})
		}
	}
}

func TestHTTPConnectionErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + secretPath
	srv.Close() // nothing listens there any more
	s := notify.Settings{
		SMS:     &notify.SMSSettings{URL: url, Token: "tok-123"},
		Webhook: &notify.WebhookSettings{URL: url, SigningKey: []byte("whsec")},
	}
	for _, ch := range []notify.Channel{notify.ChannelSMS, notify.ChannelWebhook} {
		err := newDispatcher(notify.DispatcherOptions{}).Send(testCtx(t), s, ch, invitation("k/1"))
		if err == nil || notify.IsPermanent(err) {
			t.Errorf("%s: Send = %v, want a transient error", ch, err)
		}
		assertNoSecrets(t, err, "XyZsecretPath", "tok-123", testLink)
		if strings.Contains(err.Error(), "[redacted]") || strings.Contains(err.Error(), "Post ") {
			t.Errorf("%s: error %q should describe the failure without quoting the request", ch, err)
		}
	}

	// A context cancelled while the request is in flight.
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(block)
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() {
		errc <- newDispatcher(notify.DispatcherOptions{}).Send(ctx, notify.Settings{Webhook: &notify.WebhookSettings{URL: slow.URL, SigningKey: []byte("k")}}, notify.ChannelWebhook, invitation("k/1"))
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) || notify.IsPermanent(err) {
		t.Errorf("Send = %v, want transient context.Canceled", err)
	}
}
