/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/roster-dev/roster/internal/notify"
)

func secretData(kv ...string) map[string][]byte {
	m := map[string][]byte{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = []byte(kv[i+1])
	}
	return m
}

func TestEmailSettingsFromSecret(t *testing.T) {
	s, err := notify.EmailSettingsFromSecret(secretData("host", " smtp.example.com\n", "username", "mailer", "password", testPassword+"\n"), "Acme <noreply@acme.example>")
	if err != nil {
		t.Fatal(err)
	}
	if s.Host != "smtp.example.com" || s.Port != 587 || s.TLS != notify.TLSModeStartTLS || s.Username != "mailer" ||
		s.Password != testPassword || s.InsecureSkipVerify || s.RootCAs != nil || s.From != "Acme <noreply@acme.example>" {
		t.Errorf("settings = %#v", *s)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, *s); strings.Contains(out, testPassword) {
			t.Errorf("%s prints the password: %s", format, out)
		}
	}

	s, err = notify.EmailSettingsFromSecret(secretData("host", "127.0.0.1", "port", "465", "tls", "TLS", "insecureSkipVerify", "true", "from", "ops@acme.example"), "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Port != 465 || s.TLS != notify.TLSModeImplicit || !s.InsecureSkipVerify || s.From != "ops@acme.example" {
		t.Errorf("settings = %v", *s)
	}
}

func TestSecretErrorsNameTheKeyNotTheValue(t *testing.T) {
	const from = "noreply@acme.example"
	cases := []struct {
		name    string
		parse   func() error
		wantKey string
	}{
		{"email without host", func() error {
			_, err := notify.EmailSettingsFromSecret(secretData("password", testPassword, "username", "u"), from)
			return err
		}, `"host"`},
		{"email with a bad port", func() error {
			_, err := notify.EmailSettingsFromSecret(secretData("host", "h", "port", "smtp", "password", testPassword, "username", "u"), from)
			return err
		}, `"port"`},
		{"email with a bad tls mode", func() error {
			_, err := notify.EmailSettingsFromSecret(secretData("host", "h", "tls", "ssl3", "password", testPassword, "username", "u"), from)
			return err
		}, `"tls"`},
		{"email with credentials in clear text to a remote host", func() error {
			_, err := notify.EmailSettingsFromSecret(secretData("host", "smtp.example.com", "tls", "none", "username", "u", "password", testPassword), from)
			return err
		}, `"tls"`},
		{"email with a password but no username", func() error {
			_, err := notify.EmailSettingsFromSecret(secretData("host", "h", "password", testPassword), from)
			return err
		}, `"password"`},
		{"email with a bad insecureSkipVerify", func() error {
			_, err := notify.EmailSettingsFromSecret(secretData("host", "h", "insecureSkipVerify", "yes please", "password", testPassword, "username", "u"), from)
			return err
		}, `"insecureSkipVerify"`},
		{"email with a bad caBundle", func() error {
			_, err := notify.EmailSettingsFromSecret(secretData("host", "h", "caBundle", "not PEM", "password", testPassword, "username", "u"), from)
			return err
		}, `"caBundle"`},
		{"email with a URL as host", func() error {
			_, err := notify.EmailSettingsFromSecret(secretData("host", "unix:///var/run/x", "password", testPassword, "username", "u"), from)
			return err
		}, `"host"`},
		{"email with a port in the host", func() error {
			_, err := notify.EmailSettingsFromSecret(secretData("host", "smtp.example.com:25", "password", testPassword, "username", "u"), from)
			return err
		}, `"port"`},
		{"email without a sender", func() error {
			_, err := notify.EmailSettingsFromSecret(secretData("host", "h", "password", testPassword, "username", "u"), "")
			return err
		}, `"from"`},
		{"sms without url", func() error {
			_, err := notify.SMSSettingsFromSecret(secretData("token", testPassword))
			return err
		}, `"url"`},
		{"sms with a non-http url", func() error {
			_, err := notify.SMSSettingsFromSecret(secretData("url", "ftp://sms.example.com/"+testPassword, "token", testPassword))
			return err
		}, `"url"`},
		{"sms with token and basic auth", func() error {
			_, err := notify.SMSSettingsFromSecret(secretData("url", "https://sms.example.com", "token", testPassword, "username", "u"))
			return err
		}, `"token"`},
		{"sms with a password but no username", func() error {
			_, err := notify.SMSSettingsFromSecret(secretData("url", "https://sms.example.com", "password", testPassword))
			return err
		}, `"password"`},
		{"webhook without url", func() error {
			_, err := notify.WebhookSettingsFromSecret(secretData("signingKey", testPassword))
			return err
		}, `"url"`},
		{"webhook without signing key", func() error {
			_, err := notify.WebhookSettingsFromSecret(secretData("url", "https://hooks.example.com/"+testPassword))
			return err
		}, `"signingKey"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse()
			if err == nil {
				t.Fatal("parsing succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantKey) {
				t.Errorf("error %q does not name key %s", err, tc.wantKey)
			}
			assertNoSecrets(t, err, testPassword, "not PEM", "yes please", "ssl3")
		})
	}
}

func TestSMSAndWebhookSettingsFromSecret(t *testing.T) {
	sms, err := notify.SMSSettingsFromSecret(secretData("url", "https://sms.example.com/v1", "token", "tok\n", "from", "Acme"))
	if err != nil {
		t.Fatal(err)
	}
	if sms.URL != "https://sms.example.com/v1" || sms.Token != "tok" || sms.From != "Acme" {
		t.Errorf("sms = %#v", *sms)
	}
	wh, err := notify.WebhookSettingsFromSecret(secretData("url", "https://hooks.example.com/T0/B0/"+testPassword, "signingKey", "whsec"))
	if err != nil {
		t.Fatal(err)
	}
	if string(wh.SigningKey) != "whsec" {
		t.Errorf("signing key = %q", wh.SigningKey)
	}
	for _, out := range []string{fmt.Sprintf("%v", *sms), fmt.Sprintf("%#v", *wh), fmt.Sprint(*wh)} {
		if strings.Contains(out, "tok") && !strings.Contains(out, "Token:[redacted]") || strings.Contains(out, testPassword) || strings.Contains(out, "whsec") {
			t.Errorf("settings print secrets: %s", out)
		}
	}
}
