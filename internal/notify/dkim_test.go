/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

// The short RSA key that the Secret parser must refuse can only be made
// with the minimum size check off.
//
//go:debug rsa1024min=0
package notify_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/roster-dev/roster/internal/notify"
)

// dkimKey is a test key in the forms the Secret and DNS hold it.
type dkimKey struct {
	pem []byte // the Secret's dkimPrivateKey
	txt string // the TXT record at <selector>._domainkey.<domain>
}

func newRSAKey(t *testing.T, bits int) dkimKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return dkimKey{
		pem: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}),
		txt: "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub),
	}
}

func newEd25519Key(t *testing.T) dkimKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return dkimKey{
		pem: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		txt: "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub),
	}
}

// verifyDKIM checks data's signatures with go-msgauth, an implementation
// independent of the signer's, answering DNS from records instead of the
// network. It returns the verifications and the names looked up.
func verifyDKIM(t *testing.T, data []byte, records map[string]string) ([]*dkim.Verification, []string) {
	t.Helper()
	var mu sync.Mutex
	var queried []string
	lookup := func(name string) ([]string, error) {
		mu.Lock()
		queried = append(queried, name)
		mu.Unlock()
		if txt, ok := records[name]; ok {
			return []string{txt}, nil
		}
		return nil, fmt.Errorf("no TXT record for %s", name)
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil {
		t.Fatalf("dkim.Verify: %v", err)
	}
	return vs, queried
}

// signatureTags returns the tags of the message's DKIM-Signature header.
func signatureTags(t *testing.T, data []byte) map[string]string {
	t.Helper()
	sig := headerOf(t, data).Get("Dkim-Signature")
	if sig == "" {
		t.Fatalf("no DKIM-Signature header in:\n%s", data)
	}
	tags := map[string]string{}
	for _, part := range strings.Split(sig, ";") {
		if k, v, ok := strings.Cut(part, "="); ok {
			tags[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), "")
		}
	}
	return tags
}

func TestDKIMSignatureVerifiesAtAnIndependentServer(t *testing.T) {
	cases := []struct {
		name       string
		key        func(*testing.T) dkimKey
		domain     string // the Secret's dkimDomain; "" for the default
		wantDomain string
		wantAlgo   string
	}{
		{"RSA key, the sender's domain", func(t *testing.T) dkimKey { return newRSAKey(t, 2048) }, "", "acme.example", "rsa-sha256"},
		{"Ed25519 key, the sender's domain", newEd25519Key, "", "acme.example", "ed25519-sha256"},
		{"RSA key, an explicit domain", func(t *testing.T) dkimKey { return newRSAKey(t, 2048) }, "Mail.Acme.example", "mail.acme.example", "rsa-sha256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key(t)
			const selector = "roster2026"
			secret := map[string]string{
				notify.SecretKeyDKIMPrivateKey: string(key.pem),
				notify.SecretKeyDKIMSelector:   selector,
			}
			if tc.domain != "" {
				secret[notify.SecretKeyDKIMDomain] = tc.domain
			}
			is := startIndependentServer(t)
			_, got := is.sendInvitation(t, is.settings(t, secret))

			record := selector + "._domainkey." + tc.wantDomain
			vs, queried := verifyDKIM(t, got.data, map[string]string{record: key.txt})
			if len(vs) != 1 {
				t.Fatalf("%d DKIM signatures, want 1", len(vs))
			}
			if vs[0].Err != nil {
				t.Fatalf("DKIM signature does not verify: %v\n%s", vs[0].Err, got.data)
			}
			if vs[0].Domain != tc.wantDomain || len(queried) != 1 || queried[0] != record {
				t.Errorf("signed by %q, key looked up at %q; want %q at %q", vs[0].Domain, queried, tc.wantDomain, record)
			}
			tags := signatureTags(t, got.data)
			if tags["d"] != tc.wantDomain || tags["s"] != selector || tags["a"] != tc.wantAlgo {
				t.Errorf("d=%q s=%q a=%q, want d=%q s=%q a=%q", tags["d"], tags["s"], tags["a"], tc.wantDomain, selector, tc.wantAlgo)
			}
			signed := strings.ToLower(tags["h"])
			for _, h := range []string{"from", "to", "subject", "date", "message-id"} {
				if !strings.Contains(":"+signed+":", ":"+h+":") {
					t.Errorf("h=%q does not cover %s", tags["h"], h)
				}
			}

			// The verifier can fail: the same mail with its subject changed
			// does not verify.
			tampered := bytes.Replace(got.data, []byte("You are invited"), []byte("You are invitee"), 1)
			if bytes.Equal(tampered, got.data) {
				t.Fatal("subject not found to tamper with")
			}
			if vs, _ := verifyDKIM(t, tampered, map[string]string{record: key.txt}); len(vs) != 1 || vs[0].Err == nil {
				t.Error("a tampered mail verified")
			}
		})
	}
}

func TestNoDKIMKeyNoSignature(t *testing.T) {
	is := startIndependentServer(t)
	_, got := is.sendInvitation(t, is.settings(t, nil))
	if sig := headerOf(t, got.data).Values("Dkim-Signature"); len(sig) != 0 {
		t.Errorf("mail without a DKIM key carries DKIM-Signature %q", sig)
	}
}

func TestDKIMSecretErrors(t *testing.T) {
	good := newRSAKey(t, 2048)
	short := newRSAKey(t, 512)
	// A key the parser reads as PEM but not as a key; its body must not
	// leak into the error.
	garbled := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("KEYMATERIAL-0123456789")})
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("KEYMATERIAL-0123456789")})
	goodBody := strings.Split(string(good.pem), "\n")[1]
	shortBody := strings.Split(string(short.pem), "\n")[1]
	cases := []struct {
		name    string
		data    map[string]string
		wantKey string
	}{
		{"not PEM", map[string]string{"dkimPrivateKey": "KEYMATERIAL-0123456789", "dkimSelector": "s1"}, `"dkimPrivateKey"`},
		{"PEM that is no key", map[string]string{"dkimPrivateKey": string(garbled), "dkimSelector": "s1"}, `"dkimPrivateKey"`},
		{"a certificate", map[string]string{"dkimPrivateKey": string(cert), "dkimSelector": "s1"}, `"dkimPrivateKey"`},
		{"a truncated key", map[string]string{"dkimPrivateKey": string(good.pem[:len(good.pem)/2]), "dkimSelector": "s1"}, `"dkimPrivateKey"`},
		{"an RSA key under 1024 bits", map[string]string{"dkimPrivateKey": string(short.pem), "dkimSelector": "s1"}, `"dkimPrivateKey"`},
		{"a key without selector", map[string]string{"dkimPrivateKey": string(good.pem)}, `"dkimSelector"`},
		{"a bad selector", map[string]string{"dkimPrivateKey": string(good.pem), "dkimSelector": "s1; p=x"}, `"dkimSelector"`},
		{"a bad domain", map[string]string{"dkimPrivateKey": string(good.pem), "dkimSelector": "s1", "dkimDomain": "acme example"}, `"dkimDomain"`},
		{"a selector without key", map[string]string{"dkimSelector": "s1"}, `"dkimPrivateKey"`},
		{"a domain without key", map[string]string{"dkimDomain": "acme.example"}, `"dkimPrivateKey"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := secretData("host", "smtp.example.com")
			for k, v := range tc.data {
				data[k] = []byte(v)
			}
			s, err := notify.EmailSettingsFromSecret(data, "Acme <people@acme.example>")
			if err == nil {
				t.Fatalf("parsing succeeded: %v", s)
			}
			if !strings.Contains(err.Error(), tc.wantKey) {
				t.Errorf("error %q does not name key %s", err, tc.wantKey)
			}
			if !notify.IsPermanent(err) {
				t.Errorf("IsPermanent(%q) = false", err)
			}
			var e *notify.Error
			if !errors.As(err, &e) || e.Channel != notify.ChannelEmail {
				t.Errorf("error %#v is not an email *notify.Error", err)
			}
			assertNoSecrets(t, err, "KEYMATERIAL", goodBody, shortBody, "BEGIN", "p=x")
		})
	}
}

func TestDKIMSettingsNeverPrintTheKey(t *testing.T) {
	key := newEd25519Key(t)
	s, err := notify.EmailSettingsFromSecret(secretData("host", "smtp.example.com",
		"dkimPrivateKey", string(key.pem), "dkimSelector", "s1"), "Acme <people@acme.example>")
	if err != nil {
		t.Fatal(err)
	}
	if s.DKIM == nil || s.DKIM.Domain != "acme.example" || s.DKIM.Selector != "s1" {
		t.Fatalf("DKIM = %v", s.DKIM)
	}
	priv := s.DKIM.Key.(ed25519.PrivateKey)
	secrets := []string{
		fmt.Sprint([]byte(priv)), fmt.Sprintf("%x", []byte(priv)), base64.StdEncoding.EncodeToString(priv),
		strings.Split(string(key.pem), "\n")[1],
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{*s, s, *s.DKIM, s.DKIM} {
			out := fmt.Sprintf(format, v)
			for _, secret := range secrets {
				if strings.Contains(out, secret) {
					t.Errorf("%s of %T prints the key: %s", format, v, out)
				}
			}
		}
	}
	var _ crypto.Signer = s.DKIM.Key
}
