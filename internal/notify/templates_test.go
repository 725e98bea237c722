/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/internal/notify"
)

func fullData() map[string]any {
	return map[string]any{
		"OrganizationName": "Acme",
		"InviteeName":      "Jane Doe",
		"Link":             testLink,
		"Code":             testCode,
		"ExpiresAt":        time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC),
		"ModuleKind":       "Application",
		"ModuleName":       "billing",
		"ApplicationName":  "Billing",
		"PortalURL":        "https://portal.example.com/",
		"Reason":           "left the team",
		"DeleteAt":         time.Date(2031, 5, 6, 7, 8, 0, 0, time.UTC),
	}
}

func TestDefaultTemplatesRenderEveryPart(t *testing.T) {
	names := notify.TemplateNames()
	if len(names) != 15 {
		t.Fatalf("TemplateNames() has %d entries, want 15", len(names))
	}
	for _, name := range names {
		t.Run(string(name), func(t *testing.T) {
			msg := notify.Message{Key: "k/1", Template: name, To: notify.Recipient{Name: "Jane Doe", Email: "jane@example.com"}, Data: fullData()}
			r, err := notify.Render(notify.Settings{}, msg)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			parts := map[string]string{"subject": r.Subject, "text": r.Text, "html": r.HTML, "sms": r.SMS, "webhook": r.Webhook}
			for part, out := range parts {
				if strings.TrimSpace(out) == "" {
					t.Errorf("%s is empty", part)
				}
				if strings.Contains(out, "<no value>") {
					t.Errorf("%s contains <no value>: %q", part, out)
				}
			}
			if strings.ContainsAny(r.Subject, "\r\n") {
				t.Errorf("subject has a line break: %q", r.Subject)
			}
			if !strings.Contains(r.HTML, "<!DOCTYPE html>") {
				t.Errorf("HTML body does not use the layout")
			}
			for _, secret := range []string{testLink, "s3cr3t-t0ken", testCode} {
				if strings.Contains(r.Webhook, secret) {
					t.Errorf("webhook text contains %q: %q", secret, r.Webhook)
				}
				if strings.Contains(r.Subject, secret) {
					t.Errorf("subject contains %q: %q", secret, r.Subject)
				}
			}
		})
	}
}

func TestTemplatesCarryTheirSecretWhereNeeded(t *testing.T) {
	msg := notify.Message{Key: "k/1", Template: notify.TemplateVerificationCode, Data: fullData()}
	r, err := notify.Render(notify.Settings{}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Text, testCode) || !strings.Contains(r.HTML, testCode) || !strings.Contains(r.SMS, testCode) {
		t.Errorf("verification code missing from text/HTML/SMS: %+v", r)
	}
	msg.Template = notify.TemplateInvitationSMS
	if r, err = notify.Render(notify.Settings{}, msg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.SMS, testLink) {
		t.Errorf("invitation SMS lacks the link: %q", r.SMS)
	}
}

func TestHTMLEscapesData(t *testing.T) {
	msg := notify.Message{
		Key: "k/1", Template: notify.TemplateWelcome,
		To:   notify.Recipient{Name: `<script>alert("x")</script>`},
		Data: map[string]any{"OrganizationName": `Acme & <b>Co</b>`},
	}
	r, err := notify.Render(notify.Settings{}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.HTML, "<script>") || strings.Contains(r.HTML, "<b>Co</b>") {
		t.Errorf("HTML contains unescaped data:\n%s", r.HTML)
	}
	if !strings.Contains(r.HTML, "&lt;script&gt;") || !strings.Contains(r.HTML, "Acme &amp; &lt;b&gt;Co&lt;/b&gt;") {
		t.Errorf("HTML lacks the escaped data:\n%s", r.HTML)
	}
	if !strings.Contains(r.Text, `<script>alert("x")</script>`) {
		t.Errorf("plain text should keep the name verbatim: %q", r.Text)
	}
}

func TestMissingDataRendersEmpty(t *testing.T) {
	overrides := map[string]string{
		"welcome.txt.tmpl":     "[{{.Nope}}][{{$.AlsoMissing}}][{{if .Missing}}x{{end}}][{{.Recipient.Name}}]",
		"welcome.subject.tmpl": "Hi {{.Nope}}there",
	}
	msg := notify.Message{Key: "k/1", Template: notify.TemplateWelcome, Data: map[string]any{"Explicit": nil}}
	r, err := notify.Render(notify.Settings{Templates: overrides}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Text != "[][][][]\n" {
		t.Errorf("text = %q, want %q", r.Text, "[][][][]\n")
	}
	if r.Subject != "Hi there" {
		t.Errorf("subject = %q", r.Subject)
	}
	// Every default part, with no data at all.
	for _, name := range notify.TemplateNames() {
		r, err := notify.Render(notify.Settings{}, notify.Message{Key: "k/1", Template: name})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, out := range []string{r.Subject, r.Text, r.HTML, r.SMS, r.Webhook} {
			if strings.Contains(out, "no value") || strings.Contains(out, "<nil>") {
				t.Errorf("%s rendered a placeholder for missing data: %q", name, out)
			}
		}
	}
}

func TestOverrideReplacesDefault(t *testing.T) {
	s := notify.Settings{Templates: map[string]string{
		notify.TemplateFile(notify.TemplateWelcome, notify.PartSubject): "Willkommen bei {{.OrganizationName}}",
		notify.LayoutFile: `{{define "layout"}}<div class="acme">{{template "content" .}}</div>{{end}}`,
	}}
	msg := notify.Message{Key: "k/1", Template: notify.TemplateWelcome, Data: map[string]any{"OrganizationName": "Acme"}}
	r, err := notify.Render(s, msg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Subject != "Willkommen bei Acme" {
		t.Errorf("subject = %q", r.Subject)
	}
	if !strings.HasPrefix(r.HTML, `<div class="acme">`) {
		t.Errorf("layout override not used: %q", r.HTML)
	}
	if !strings.Contains(r.Text, "welcome to Acme") {
		t.Errorf("text should still be the default: %q", r.Text)
	}
}

func TestBrokenOverrideIsPermanentAndNamesTheFile(t *testing.T) {
	cases := map[string]string{
		// parse error
		"welcome.txt.tmpl": "Hello CONTENT-MARKER {{.Name",
		// unterminated attribute, found by the HTML escaper
		"welcome.html.tmpl": `{{template "layout" .}}{{define "content"}}<a href="{{.Link}}>CONTENT-MARKER</a>{{end}}`,
		// execution error
		"welcome.subject.tmpl": "CONTENT-MARKER {{.OrganizationName.Nested.Deeper}}",
		notify.LayoutFile:      "{{define \"layout\"}}CONTENT-MARKER{{end",
	}
	for file, src := range cases {
		t.Run(file, func(t *testing.T) {
			msg := notify.Message{Key: "k/1", Template: notify.TemplateWelcome, Data: map[string]any{"OrganizationName": "Acme", "Link": testLink}}
			_, err := notify.Render(notify.Settings{Templates: map[string]string{file: src}}, msg)
			if err == nil {
				t.Fatal("Render succeeded")
			}
			if !notify.IsPermanent(err) {
				t.Errorf("IsPermanent(%q) = false", err)
			}
			if !strings.Contains(err.Error(), `"`+file+`"`) {
				t.Errorf("error %q does not name %s", err, file)
			}
			if strings.Contains(err.Error(), "CONTENT-MARKER") {
				t.Errorf("error %q quotes the template content", err)
			}
			assertNoSecrets(t, err, testLink)
		})
	}
}

func TestWebhookTextNeverLeaksOverriddenSecrets(t *testing.T) {
	s := notify.Settings{Templates: map[string]string{
		"invitation-email.webhook.tmpl": "Invited {{.InviteeName}} via {{.Link}} code {{.Code}}",
	}}
	msg := invitation("k/1")
	msg.Data["Code"] = testCode
	r, err := notify.Render(s, msg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.Webhook, "s3cr3t-t0ken") || strings.Contains(r.Webhook, testCode) {
		t.Errorf("webhook text leaks: %q", r.Webhook)
	}
	if !strings.Contains(r.Webhook, "Invited Jane Doe") {
		t.Errorf("webhook text lost its content: %q", r.Webhook)
	}
}

func TestValidateTemplates(t *testing.T) {
	if err := notify.ValidateTemplates(map[string]string{"welcome.txt.tmpl": "Hi {{.InviteeName}}", notify.LayoutFile: `{{define "layout"}}{{end}}`}); err != nil {
		t.Errorf("valid overrides: %v", err)
	}
	err := notify.ValidateTemplates(map[string]string{"welcom.txt.tmpl": "x", "welcome.html.tmpl": "{{if}}"})
	if err == nil || !notify.IsPermanent(err) {
		t.Fatalf("ValidateTemplates = %v, want a permanent error", err)
	}
	for _, want := range []string{`"welcom.txt.tmpl"`, `"welcome.html.tmpl"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestRenderRejectsUnknownTemplate(t *testing.T) {
	_, err := notify.Render(notify.Settings{}, notify.Message{Key: "k/1", Template: "nope"})
	var e *notify.Error
	if !errors.As(err, &e) || !e.Permanent {
		t.Fatalf("Render = %v, want a permanent *notify.Error", err)
	}
}

func TestDatetimeFormatsTimes(t *testing.T) {
	at := time.Date(2026, 5, 1, 14, 30, 0, 0, time.FixedZone("CEST", 2*3600))
	s := notify.Settings{Templates: map[string]string{"welcome.txt.tmpl": "{{datetime .ExpiresAt}}|{{datetime .Ptr}}|{{datetime .Nil}}|{{datetime .Str}}"}}
	var nilTime *time.Time
	msg := notify.Message{Key: "k/1", Template: notify.TemplateWelcome, Data: map[string]any{"ExpiresAt": at, "Ptr": &at, "Nil": nilTime, "Str": "tomorrow"}}
	r, err := notify.Render(s, msg)
	if err != nil {
		t.Fatal(err)
	}
	want := "Fri, 01 May 2026 12:30 UTC|Fri, 01 May 2026 12:30 UTC||tomorrow\n"
	if r.Text != want {
		t.Errorf("text = %q, want %q", r.Text, want)
	}
}
