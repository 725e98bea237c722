package notify_test

import (
	"strings"
	"testing"

	"github.com/roster-dev/roster/internal/notify"
)

// FuzzRenderHostileNames renders every message with names and organization names a
// stranger chose: markup must stay text in the HTML, line breaks must not reach the
// subject (a header), and chat mentions must not reach the webhook text.
func FuzzRenderHostileNames(f *testing.F) {
	for _, seed := range []string{
		"<script>alert(1)</script>", "Eve\r\nBcc: all@example.com", "<!channel> urgent", "<@U024BE7LH>",
		"<https://evil.example|click>", "&lt;!here&gt;", "Zoë 🚀", "{{.Link}}", strings.Repeat("A", 500),
	} {
		f.Add(seed, "Acme")
		f.Add("Jane", seed)
	}
	f.Fuzz(func(t *testing.T, name, org string) {
		for _, tmpl := range notify.TemplateNames() {
			msg := notify.Message{Key: "k/1", Template: tmpl, To: notify.Recipient{Name: name, Email: "jane@example.com"},
				Data: map[string]any{"OrganizationName": org, "InviteeName": name, "MemberName": name, "InvitedBy": name,
					"Link": "https://join.example/invite/tok", "ApplicationName": org, "ModuleName": name}}
			r, err := notify.Render(notify.Settings{}, msg)
			if err != nil {
				t.Fatalf("%s: %v", tmpl, err)
			}
			if strings.ContainsAny(r.Subject, "\r\n") {
				t.Fatalf("%s: a line break in the subject %q", tmpl, r.Subject)
			}
			if strings.Contains(r.Webhook, "<!") || strings.Contains(r.Webhook, "<@") || strings.Contains(r.Webhook, "<http") {
				t.Fatalf("%s: a chat mention or link from the input in %q", tmpl, r.Webhook)
			}
			for _, in := range []string{name, org} {
				if strings.Contains(in, "<script") && strings.Contains(r.HTML, "<script") {
					t.Fatalf("%s: markup from the input in the HTML", tmpl)
				}
			}
			if strings.Contains(r.Webhook, "join.example/invite/tok") {
				t.Fatalf("%s: the link reached the admin channel", tmpl)
			}
		}
	})
}
