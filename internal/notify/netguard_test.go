package notify_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/roster-dev/roster/internal/notify"
	"github.com/roster-dev/roster/internal/notify/mailsink"
)

// A tenant's channel settings must not make Roster connect into the cluster or the cloud's
// metadata service: by default only public addresses are reached, checked on the address
// actually dialled.
func TestNotificationTargetsAreGuarded(t *testing.T) {
	ctx := testCtx(t)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	sink := startSink(t, mailsink.Options{})
	webhook := func(url string) notify.Settings {
		return notify.Settings{Webhook: &notify.WebhookSettings{URL: url, SigningKey: []byte("k")}}
	}
	guarded := notify.NewDispatcher(notify.DispatcherOptions{})

	for _, target := range []string{srv.URL, "http://localhost" + port} {
		err := guarded.Send(ctx, webhook(target), notify.ChannelWebhook, invitation("uid-g/invitation/1"))
		if err == nil || !strings.Contains(err.Error(), "internal addresses are not notification targets") || !notify.IsPermanent(err) {
			t.Errorf("webhook to %s: %v, want a permanent refusal", target, err)
		}
	}
	err := guarded.Send(ctx, notify.Settings{Email: emailSettings(t, sink, map[string]string{"tls": "none"})}, notify.ChannelEmail, invitation("uid-g/invitation/2"))
	if err == nil || !strings.Contains(err.Error(), "internal addresses") || !notify.IsPermanent(err) {
		t.Errorf("SMTP to a loopback sink: %v, want a permanent refusal", err)
	}
	if hits.Load() != 0 || len(sink.Messages()) != 0 {
		t.Fatalf("a guarded target was reached: %d requests, %d mails", hits.Load(), len(sink.Messages()))
	}

	allowed := notify.NewDispatcher(notify.DispatcherOptions{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err := allowed.Send(ctx, webhook(srv.URL), notify.ChannelWebhook, invitation("uid-g/invitation/3")); err != nil {
		t.Fatalf("allowed loopback: %v", err)
	}
	if hits.Load() != 1 {
		t.Fatalf("%d requests reached the allowed server, want 1", hits.Load())
	}
}

func TestGuardRanges(t *testing.T) {
	for addr, denied := range map[string]bool{
		"169.254.169.254": true, "10.96.0.1": true, "172.20.0.5": true, "192.168.1.1": true, "127.0.0.1": true,
		"100.64.0.1": true, "0.0.0.0": true, "::1": true, "fe80::1": true, "fd00::1": true, "::ffff:10.0.0.1": true,
		"93.184.216.34": false, "2606:4700::1111": false, "8.8.8.8": false,
	} {
		err := notify.CheckAddress(netip.MustParseAddr(addr), nil)
		if (err != nil) != denied {
			t.Errorf("%s: %v, want denied=%t", addr, err, denied)
		}
	}
	if err := notify.CheckAddress(netip.MustParseAddr("10.1.2.3"), []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}); err != nil {
		t.Errorf("an allowed relay: %v", err)
	}
}

func TestPlainHTTPOnlyToLoopback(t *testing.T) {
	for url, ok := range map[string]bool{
		"http://sms.example.com/send": false, "https://sms.example.com/send": true,
		"http://127.0.0.1:8080/hook": true, "http://localhost/hook": true, "http://[::1]/hook": true,
	} {
		_, err := notify.SMSSettingsFromSecret(secretData("url", url, "token", "t"))
		if (err == nil) != ok {
			t.Errorf("%s: %v, want ok=%t", url, err, ok)
		}
	}
}
