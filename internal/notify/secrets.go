/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
)

// Keys of the channel Secrets. They are exported so the code that creates
// Secrets (demo, tests, documentation generators) cannot drift from the
// parser.
const (
	// SecretKeyHost is the SMTP server's host name or IP address.
	SecretKeyHost = "host"
	// SecretKeyPort is the SMTP port; DefaultSMTPPort when absent.
	SecretKeyPort = "port"
	// SecretKeyUsername enables SMTP AUTH, or HTTP basic auth for SMS.
	SecretKeyUsername = "username"
	// SecretKeyPassword goes with SecretKeyUsername.
	SecretKeyPassword = "password"
	// SecretKeyTLS is a TLSMode: "starttls" (default), "tls" or "none".
	SecretKeyTLS = "tls"
	// SecretKeyInsecureSkipVerify = "true" disables certificate checks.
	SecretKeyInsecureSkipVerify = "insecureSkipVerify"
	// SecretKeyCABundle holds PEM certificates of a private CA.
	SecretKeyCABundle = "caBundle"
	// SecretKeyFrom is the email sender or the SMS sender id.
	SecretKeyFrom = "from"
	// SecretKeyURL is the SMS provider's or webhook's endpoint.
	SecretKeyURL = "url"
	// SecretKeyToken is the SMS provider's bearer token.
	SecretKeyToken = "token"
	// SecretKeySigningKey is the webhook's HMAC key.
	SecretKeySigningKey = "signingKey"
	// SecretKeyDKIMPrivateKey is the PEM private key (RSA of at least 1024
	// bits, or Ed25519; PKCS#1 or PKCS#8) that signs outgoing mail with
	// DKIM. Receivers that can verify a signature for the From domain are
	// far less likely to file the mail as spam.
	SecretKeyDKIMPrivateKey = "dkimPrivateKey"
	// SecretKeyDKIMSelector names the DNS record holding the public key:
	// <selector>._domainkey.<domain>. Required with a DKIM key.
	SecretKeyDKIMSelector = "dkimSelector"
	// SecretKeyDKIMDomain is the signing domain (d=); it defaults to the
	// sender address's domain, which is what DMARC alignment wants.
	SecretKeyDKIMDomain = "dkimDomain"
)

// DefaultSMTPPort is the submission port, used when the Secret has no port.
const DefaultSMTPPort = 587

// EmailSettingsFromSecret parses an email Secret's data. from is the sender
// address from the organization's spec; when empty, the Secret's "from" key
// is used. Errors name the offending key but never its value, because they
// are shown in the organization's status.
//
// Keys: host (required), port (default 587), username and password
// (optional; AUTH only when username is set), tls = starttls (default) |
// tls | none, insecureSkipVerify = "true" (tests and demos only), caBundle
// (PEM, for a private CA), dkimPrivateKey, dkimSelector and dkimDomain
// (optional DKIM signing; see SecretKeyDKIMPrivateKey).
func EmailSettingsFromSecret(data map[string][]byte, from string) (*EmailSettings, error) {
	const kind = "email"
	host := plain(data, SecretKeyHost)
	if host == "" {
		return nil, missing(kind, SecretKeyHost)
	}
	if err := validateHost(host); err != nil {
		return nil, invalid(kind, SecretKeyHost, err.Error())
	}
	s := &EmailSettings{
		Host:     strings.Trim(host, "[]"),
		Port:     DefaultSMTPPort,
		Username: plain(data, SecretKeyUsername),
		Password: secret(data, SecretKeyPassword),
		TLS:      TLSModeStartTLS,
	}
	if p := plain(data, SecretKeyPort); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return nil, invalid(kind, SecretKeyPort, "must be a number between 1 and 65535")
		}
		s.Port = port
	}
	if s.Password != "" && s.Username == "" {
		return nil, invalid(kind, SecretKeyPassword, fmt.Sprintf("requires key %q", SecretKeyUsername))
	}
	if t := plain(data, SecretKeyTLS); t != "" {
		switch mode := TLSMode(strings.ToLower(t)); mode {
		case TLSModeStartTLS, TLSModeImplicit, TLSModeNone:
			s.TLS = mode
		default:
			return nil, invalid(kind, SecretKeyTLS, fmt.Sprintf("must be %q, %q or %q", TLSModeStartTLS, TLSModeImplicit, TLSModeNone))
		}
	}
	if s.TLS == TLSModeNone && s.Username != "" && !isLoopback(s.Host) {
		return nil, invalid(kind, SecretKeyTLS, fmt.Sprintf("%q would send credentials unencrypted; only allowed for localhost", TLSModeNone))
	}
	if v := plain(data, SecretKeyInsecureSkipVerify); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, invalid(kind, SecretKeyInsecureSkipVerify, `must be "true" or "false"`)
		}
		s.InsecureSkipVerify = b
	}
	if pem := data[SecretKeyCABundle]; len(pem) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, invalid(kind, SecretKeyCABundle, "contains no PEM certificate")
		}
		s.RootCAs = pool
	}
	if from == "" {
		from = plain(data, SecretKeyFrom)
	}
	if from == "" {
		return nil, fmt.Errorf("%s settings: no sender address: set the organization's sender or Secret key %q", kind, SecretKeyFrom)
	}
	if _, err := mail.ParseAddress(from); err != nil {
		return nil, fmt.Errorf("%s settings: sender address is not a valid email address", kind)
	}
	s.From = from
	dkim, err := dkimSettingsFromSecret(data, from)
	if err != nil {
		return nil, err
	}
	s.DKIM = dkim
	return s, nil
}

// dkimSettingsFromSecret reads the optional DKIM keys. A DKIM key that is
// present but unusable is an error rather than a reason to send unsigned:
// the organization asked for signed mail. Errors are permanent *Error
// values (retrying cannot help until the Secret changes) and never contain
// the key or any part of it, nor the parser's own message about it.
func dkimSettingsFromSecret(data map[string][]byte, from string) (*DKIMSettings, error) {
	const kind = "email"
	pemKey := bytes.TrimSpace(data[SecretKeyDKIMPrivateKey])
	selector := plain(data, SecretKeyDKIMSelector)
	domain := plain(data, SecretKeyDKIMDomain)
	if len(pemKey) == 0 {
		for _, k := range []string{SecretKeyDKIMSelector, SecretKeyDKIMDomain} {
			if plain(data, k) != "" {
				return nil, settingError(invalid(kind, k, fmt.Sprintf("requires key %q", SecretKeyDKIMPrivateKey)))
			}
		}
		return nil, nil
	}
	key, why := parseDKIMKey(pemKey)
	if why != "" {
		return nil, settingError(invalid(kind, SecretKeyDKIMPrivateKey, why))
	}
	if selector == "" {
		return nil, settingError(fmt.Errorf("%s settings: Secret key %q is required with key %q", kind, SecretKeyDKIMSelector, SecretKeyDKIMPrivateKey))
	}
	if !isDNSName(selector) {
		return nil, settingError(invalid(kind, SecretKeyDKIMSelector, "must be a DNS name (letters, digits, hyphens, dots)"))
	}
	if domain == "" {
		a, err := mail.ParseAddress(from)
		if err != nil {
			return nil, settingError(fmt.Errorf("%s settings: sender address is not a valid email address", kind))
		}
		domain = addressDomain(a.Address)
		if !isDNSName(domain) {
			return nil, settingError(fmt.Errorf("%s settings: the sender's domain cannot sign with DKIM; set Secret key %q", kind, SecretKeyDKIMDomain))
		}
	} else if !isDNSName(domain) {
		return nil, settingError(invalid(kind, SecretKeyDKIMDomain, "must be a DNS name (letters, digits, hyphens, dots)"))
	}
	return &DKIMSettings{Domain: strings.ToLower(domain), Selector: selector, Key: key}, nil
}

// minDKIMRSABits is RFC 8301's floor: verifiers treat signatures by
// smaller RSA keys as invalid.
const minDKIMRSABits = 1024

// parseDKIMKey decodes a PEM private key usable for DKIM. On failure it
// returns why in words fit for status, without the parser's error (which
// could quote the input).
func parseDKIMKey(pemKey []byte) (crypto.Signer, string) {
	const want = "must be a PEM-encoded RSA or Ed25519 private key (PKCS#1 or PKCS#8)"
	block, _ := pem.Decode(pemKey)
	if block == nil {
		return nil, want
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, want
	}
	if err != nil {
		return nil, want
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < minDKIMRSABits {
			return nil, fmt.Sprintf("is an RSA key shorter than %d bits; use 2048 bits or Ed25519", minDKIMRSABits)
		}
		return k, ""
	case ed25519.PrivateKey:
		return k, ""
	default:
		return nil, want
	}
}

// settingError marks a settings error as a permanent email error, so
// IsPermanent reports it as one; its text is err's.
func settingError(err error) error {
	return &Error{Channel: ChannelEmail, Permanent: true, msg: err.Error(), cause: err}
}

// SMSSettingsFromSecret parses an SMS provider Secret's data. Keys: url
// (required), token (optional bearer token), username and password
// (optional basic auth), from (optional sender id).
func SMSSettingsFromSecret(data map[string][]byte) (*SMSSettings, error) {
	const kind = "sms"
	u, err := endpointURL(kind, data)
	if err != nil {
		return nil, err
	}
	s := &SMSSettings{
		URL:      u,
		Token:    secret(data, SecretKeyToken),
		Username: plain(data, SecretKeyUsername),
		Password: secret(data, SecretKeyPassword),
		From:     plain(data, SecretKeyFrom),
	}
	if s.Password != "" && s.Username == "" {
		return nil, invalid(kind, SecretKeyPassword, fmt.Sprintf("requires key %q", SecretKeyUsername))
	}
	if s.Token != "" && s.Username != "" {
		return nil, invalid(kind, SecretKeyToken, fmt.Sprintf("cannot be combined with key %q", SecretKeyUsername))
	}
	return s, nil
}

// WebhookSettingsFromSecret parses a webhook Secret's data. Keys: url
// (required) and signingKey (required, the HMAC key receivers verify
// X-Roster-Signature with).
func WebhookSettingsFromSecret(data map[string][]byte) (*WebhookSettings, error) {
	const kind = "webhook"
	u, err := endpointURL(kind, data)
	if err != nil {
		return nil, err
	}
	key := secret(data, SecretKeySigningKey)
	if key == "" {
		return nil, missing(kind, SecretKeySigningKey)
	}
	return &WebhookSettings{URL: u, SigningKey: []byte(key)}, nil
}

// plain reads a non-secret value; surrounding whitespace is never meant.
func plain(data map[string][]byte, key string) string {
	return strings.TrimSpace(string(data[key]))
}

// secret reads a credential. Only trailing line breaks are removed (they
// sneak in through "kubectl create secret --from-file"); other whitespace
// may be part of the credential.
func secret(data map[string][]byte, key string) string {
	return strings.TrimRight(string(data[key]), "\r\n")
}

func missing(kind, key string) error {
	return fmt.Errorf("%s settings: Secret key %q is required", kind, key)
}

func invalid(kind, key, why string) error {
	return fmt.Errorf("%s settings: Secret key %q %s", kind, key, why)
}

func validateHost(host string) error {
	if strings.ContainsAny(host, "/\\ \t@") || strings.Contains(host, "://") {
		return errors.New("must be a host name or IP address")
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		return nil
	}
	if strings.Contains(host, ":") {
		return fmt.Errorf("must not contain a port; use key %q", SecretKeyPort)
	}
	return nil
}

// endpointURL reads the required "url" key of an HTTP channel.
func endpointURL(kind string, data map[string][]byte) (string, error) {
	u := plain(data, SecretKeyURL)
	if u == "" {
		return "", missing(kind, SecretKeyURL)
	}
	if err := validateURL(u); err != nil {
		return "", invalid(kind, SecretKeyURL, err.Error())
	}
	return u, nil
}

func validateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a valid URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return errors.New("must be an http or https URL")
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		// The request carries the provider's credentials, and an SMS the person's link.
		return errors.New("must be an https URL: http sends credentials and links in the clear")
	}
	return nil
}

// isLoopback matches the host names the SMTP client accepts for
// credentials over an unencrypted connection.
func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}
