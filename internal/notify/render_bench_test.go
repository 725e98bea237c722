package notify_test

import (
	"testing"

	"github.com/roster-dev/roster/internal/notify"
)

// BenchmarkRender measures rendering one invitation mail (subject, text and HTML), the
// work done per message on top of delivery.
func BenchmarkRender(b *testing.B) {
	msg := notify.Message{
		Key:      "3f2c/invitation/0",
		Template: notify.TemplateInvitationEmail,
		To:       notify.Recipient{Name: "Bob Builder", Email: "bob@acme.example"},
		Data: map[string]any{"OrganizationName": "Acme", "InviteeName": "Bob Builder",
			"Link": "https://join.acme.example/invite/token", "ExpiresAt": "Mon, 30 Nov 2026 16:00:00 UTC"},
	}
	for b.Loop() {
		if _, err := notify.Render(notify.Settings{}, msg); err != nil {
			b.Fatal(err)
		}
	}
}
