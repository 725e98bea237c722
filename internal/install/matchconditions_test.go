package install_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/roster-dev/roster/internal/operator"
)

// leaveOut is the one shape a webhook's matchConditions may have: leave out requests by the
// manager's own identity (and then only of some kinds). Anything else would let other
// people's writes past the webhooks.
var leaveOut = regexp.MustCompile(`^!\(request\.userInfo\.username == '([^']+)' && (.+)\)$`)

// The webhooks admit the manager's status writes and Member creates whatever they hold, so
// the API server is told not to call them for those (a round trip and 3 ms of CPU each, five
// for each invitation). The condition must name exactly the ServiceAccount the manager runs
// as, in the namespace it is installed in, and leave nothing else out.
func TestWebhooksLeaveOutOnlyTheManagersOwnWrites(t *testing.T) {
	for name, r := range map[string]struct {
		rendering
		manager string
	}{
		"config/default":         {kustomize(t, "default"), operator.DefaultTrustedUser},
		"chart":                  {helm(t, helmOptions{}), operator.DefaultTrustedUser},
		"chart in namespace ops": {helm(t, helmOptions{namespace: "ops"}), "system:serviceaccount:ops:roster-manager"},
	} {
		t.Run(name, func(t *testing.T) {
			var left int
			for k, o := range r.rendering {
				if !strings.HasSuffix(fmt.Sprint(o["kind"]), "WebhookConfiguration") {
					continue
				}
				hooks, _ := o["webhooks"].([]any)
				for _, h := range hooks {
					hook := h.(map[string]any)
					conds, _ := hook["matchConditions"].([]any)
					for _, c := range conds {
						expr := fmt.Sprint(c.(map[string]any)["expression"])
						m := leaveOut.FindStringSubmatch(expr)
						if m == nil {
							t.Errorf("%s %s: matchCondition %q is not `!(request.userInfo.username == <manager> && ...)`", k, hook["name"], expr)
							continue
						}
						if m[1] != r.manager {
							t.Errorf("%s %s: leaves out %q, but the manager runs as %q", k, hook["name"], m[1], r.manager)
						}
						if strings.Contains(m[2], "||") && !strings.HasPrefix(m[2], "(") {
							t.Errorf("%s %s: %q needs parentheses around its alternatives", k, hook["name"], m[2])
						}
						left++
					}
				}
			}
			// Each webhook that admits the manager's status writes leaves them out: the
			// validating ones of the five kinds, and the Member's mutating one its creates.
			if left != 6 {
				t.Errorf("%d matchConditions, want 6", left)
			}
		})
	}
}
