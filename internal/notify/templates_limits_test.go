package notify_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/roster-dev/roster/internal/notify"
)

// An override is a tenant's code run in the manager: nested template calls that double at
// every level, a range over a big number, and plain huge output are refused or capped,
// before they cost more than a moment.
func TestHostileOverridesAreBounded(t *testing.T) {
	nest := `{{define "a0"}}xxxxxxxxxxxxxxxx{{end}}`
	for i := 1; i <= 40; i++ {
		nest += `{{define "a` + strconv.Itoa(i) + `"}}{{template "a` + strconv.Itoa(i-1) + `"}}{{template "a` + strconv.Itoa(i-1) + `"}}{{end}}`
	}
	nest += `{{template "a40"}}`
	cases := map[string]string{
		"nested template calls":   nest,
		"a range over a number":   `{{range 1000000000}}{{end}}`,
		"a range over a pipeline": `{{range slice "abc" 0}}{{end}}`,
		"huge output":             `{{define "x"}}` + strings.Repeat("y", 300<<10) + `{{end}}{{template "x"}}`,
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			file := notify.TemplateFile(notify.TemplateWelcome, notify.PartText)
			s := notify.Settings{Templates: map[string]string{file: src}}
			_, err := notify.Render(s, notify.Message{Key: "k/1", Template: notify.TemplateWelcome, To: notify.Recipient{Email: "a@example.com"}})
			if err == nil || !notify.IsPermanent(err) {
				t.Fatalf("Render: %v, want a permanent refusal", err)
			}
			if name != "huge output" {
				if err := notify.ValidateTemplates(s.Templates); err == nil {
					t.Fatal("ValidateTemplates admitted it")
				}
			}
		})
	}
	// The built-in templates and a plain override stay within bounds.
	ok := map[string]string{notify.TemplateFile(notify.TemplateWelcome, notify.PartText): `Hi {{.Recipient.Name}}{{range .Items}}-{{.}}{{end}}`}
	if err := notify.ValidateTemplates(ok); err != nil {
		t.Fatal(err)
	}
}
