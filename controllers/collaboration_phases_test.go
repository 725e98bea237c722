package controllers

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/notify"
)

// decideCollaboration is tested without a server: facts in, decision out.

var decideNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *metav1.Time { t := metav1.NewTime(decideNow.Add(d)); return &t }

func emailOrg() *rosterv1.Organization {
	return &rosterv1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: "ns"},
		Spec: rosterv1.OrganizationSpec{Notifications: rosterv1.Notifications{
			Email: &rosterv1.EmailNotifications{SMTPSecretRef: rosterv1.LocalObjectReference{Name: "smtp"}, From: "a@acme.example"},
		}},
	}
}

func newCollab(mutate ...func(*rosterv1.Collaboration)) *rosterv1.Collaboration {
	c := &rosterv1.Collaboration{
		ObjectMeta: metav1.ObjectMeta{Name: "frank", Namespace: "ns", UID: "u1", Generation: 3},
		Spec: rosterv1.CollaborationSpec{
			OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
			Collaborator:    rosterv1.Collaborator{DisplayName: "Frank", Email: "frank@x.example"},
			CleanupPolicy:   rosterv1.CleanupDelete,
		},
	}
	for _, m := range mutate {
		m(c)
	}
	return c
}

func modules(ms ...rosterv1.Module) func(*rosterv1.Collaboration) {
	return func(c *rosterv1.Collaboration) { c.Spec.Modules = ms }
}

func notified(ids ...string) func(*rosterv1.Collaboration) {
	return func(c *rosterv1.Collaboration) { c.Status.NotifiedModules = ids }
}

func delivered(state string, keys ...string) func(*rosterv1.Collaboration) {
	return func(c *rosterv1.Collaboration) {
		for _, k := range keys {
			c.Status.Deliveries = append(c.Status.Deliveries, rosterv1.Delivery{Channel: "email", Key: k, State: state, Error: map[bool]string{true: "550 no such user"}[state == DeliveryFailed]})
		}
	}
}

func phase(p rosterv1.CollaborationPhase) func(*rosterv1.Collaboration) {
	return func(c *rosterv1.Collaboration) { c.Status.Phase = p }
}

var (
	project = rosterv1.Module{Kind: "Project", Name: "website"}
	task    = rosterv1.Module{Kind: "Task", Name: "copy"}
	// asked is a module the person asked for on its link: it waits for an admin.
	asked = rosterv1.Module{Kind: "Project", Name: "apollo", Role: "viewer", Approval: rosterv1.ModulePending}
)

// approvedNow is a module as an admin approves it.
func approvedNow(m rosterv1.Module) rosterv1.Module { m.Approval = rosterv1.ModuleApproved; return m }

func queued(d collaborationDecision) []string {
	var out []string
	for _, m := range d.Queue {
		out = append(out, m.Key)
	}
	return out
}

// decisionWant is what a case expects of a decision.
type decisionWant struct {
	phase    rosterv1.CollaborationPhase
	active   int32
	pending  int32
	notified []string
	queue    []string
	progress progress
	ready    bool
	reason   string
	deleted  bool
	requeue  time.Duration
	// notifiedReason is the Notified condition's reason; "" expects none set.
	notifiedReason string
}

func TestDecideCollaboration(t *testing.T) {
	cases := []struct {
		name string
		org  *rosterv1.Organization
		c    *rosterv1.Collaboration
		want decisionWant
	}{{
		name: "new modules are told once each, and the person is Invited until one is delivered",
		org:  emailOrg(),
		c:    newCollab(modules(project, task)),
		want: decisionWant{phase: rosterv1.CollaborationInvited, active: 2, notified: []string{"Project/website", "Task/copy"},
			queue:    []string{"u1/collaborator-added/Project/website/3", "u1/collaborator-added/Task/copy/3"},
			progress: working, reason: rosterv1.ReasonNotifying},
	}, {
		name: "recorded modules are not told again",
		org:  emailOrg(),
		c: newCollab(modules(project), notified("Project/website"), phase(rosterv1.CollaborationInvited),
			delivered(DeliverySending, "u1/collaborator-added/Project/website/3")),
		want: decisionWant{phase: rosterv1.CollaborationInvited, active: 1, notified: []string{"Project/website"}, progress: working, reason: rosterv1.ReasonNotifying},
	}, {
		name: "a delivered added-message makes the person Active",
		org:  emailOrg(),
		c: newCollab(modules(project), notified("Project/website"), phase(rosterv1.CollaborationInvited),
			delivered(DeliverySent, "u1/collaborator-added/Project/website/3")),
		want: decisionWant{phase: rosterv1.CollaborationActive, active: 1, notified: []string{"Project/website"}, progress: settled, ready: true,
			reason: rosterv1.ReasonCollaborationActive, notifiedReason: rosterv1.ReasonDelivered},
	}, {
		name: "a module taken out of spec is told as removed",
		org:  emailOrg(),
		c: newCollab(modules(task), notified("Project/website", "Task/copy"), phase(rosterv1.CollaborationActive),
			delivered(DeliverySent, "u1/collaborator-added/Project/website/2", "u1/collaborator-added/Task/copy/2")),
		want: decisionWant{phase: rosterv1.CollaborationActive, active: 1, notified: []string{"Task/copy"},
			queue: []string{"u1/collaborator-removed/Project/website/3"}, progress: working, ready: true, reason: rosterv1.ReasonNotifying},
	}, {
		name: "a module whose expiresAt equals now has expired",
		org:  emailOrg(),
		c: newCollab(modules(func() rosterv1.Module { m := project; m.ExpiresAt = at(0); return m }(), task),
			notified("Project/website", "Task/copy"), phase(rosterv1.CollaborationActive),
			delivered(DeliverySent, "u1/collaborator-added/Project/website/3", "u1/collaborator-added/Task/copy/3")),
		want: decisionWant{phase: rosterv1.CollaborationActive, active: 1, notified: []string{"Task/copy"},
			queue: []string{"u1/collaborator-removed/Project/website/3"}, progress: working, ready: true, reason: rosterv1.ReasonNotifying},
	}, {
		name: "a module expiring a nanosecond from now is still in, and the pass comes back then",
		org:  emailOrg(),
		c: newCollab(modules(func() rosterv1.Module { m := project; m.ExpiresAt = at(time.Nanosecond); return m }()),
			notified("Project/website"), phase(rosterv1.CollaborationActive), delivered(DeliverySent, "u1/collaborator-added/Project/website/3")),
		want: decisionWant{phase: rosterv1.CollaborationActive, active: 1, notified: []string{"Project/website"}, progress: settled, ready: true,
			reason: rosterv1.ReasonCollaborationActive, requeue: time.Nanosecond, notifiedReason: rosterv1.ReasonDelivered},
	}, {
		name: "a module expired before it was told is never told",
		org:  emailOrg(),
		c:    newCollab(modules(func() rosterv1.Module { m := project; m.ExpiresAt = at(-time.Hour); return m }(), task)),
		want: decisionWant{phase: rosterv1.CollaborationInvited, active: 1, notified: []string{"Task/copy"},
			queue: []string{"u1/collaborator-added/Task/copy/3"}, progress: working, reason: rosterv1.ReasonNotifying},
	}, {
		name: "no module left: the person is told, then the object goes",
		org:  emailOrg(),
		c: newCollab(notified("Project/website"), phase(rosterv1.CollaborationActive),
			delivered(DeliverySent, "u1/collaborator-added/Project/website/2")),
		want: decisionWant{phase: rosterv1.CollaborationRemoved, queue: []string{"u1/collaborator-removed/Project/website/3"},
			progress: working, reason: rosterv1.ReasonRemoving},
	}, {
		name: "no module left, removal still sending: deletion waits",
		org:  emailOrg(),
		c:    newCollab(phase(rosterv1.CollaborationRemoved), delivered(DeliverySending, "u1/collaborator-removed/Project/website/3")),
		want: decisionWant{phase: rosterv1.CollaborationRemoved, progress: working, reason: rosterv1.ReasonRemoving},
	}, {
		name: "no module left and told: delete",
		org:  emailOrg(),
		c:    newCollab(phase(rosterv1.CollaborationRemoved), delivered(DeliverySent, "u1/collaborator-removed/Project/website/3")),
		want: decisionWant{phase: rosterv1.CollaborationRemoved, progress: working, reason: rosterv1.ReasonRemoving, deleted: true,
			notifiedReason: rosterv1.ReasonDelivered},
	}, {
		name: "no module left and the removal failed for good: delete all the same",
		org:  emailOrg(),
		c:    newCollab(phase(rosterv1.CollaborationRemoved), delivered(DeliveryFailed, "u1/collaborator-removed/Project/website/3")),
		want: decisionWant{phase: rosterv1.CollaborationRemoved, progress: working, reason: rosterv1.ReasonRemoving, deleted: true,
			notifiedReason: rosterv1.ReasonMessageFailed},
	}, {
		name: "no module left with Retain: Removed and kept",
		org:  emailOrg(),
		c: newCollab(func(c *rosterv1.Collaboration) { c.Spec.CleanupPolicy = rosterv1.CleanupRetain }, phase(rosterv1.CollaborationRemoved),
			delivered(DeliverySent, "u1/collaborator-removed/Project/website/3")),
		want: decisionWant{phase: rosterv1.CollaborationRemoved, progress: settled, ready: true, reason: rosterv1.ReasonCollaborationRemoved,
			notifiedReason: rosterv1.ReasonDelivered},
	}, {
		name: "no channel: nothing is sent, the person is Active, and the Notified condition says why",
		org:  &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: "ns"}},
		c:    newCollab(modules(project)),
		want: decisionWant{phase: rosterv1.CollaborationActive, active: 1, progress: settled, ready: true, reason: rosterv1.ReasonCollaborationActive,
			notifiedReason: rosterv1.ReasonNoNotificationChannel},
	}, {
		name: "SMS when there is no email",
		org: &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: "ns"}, Spec: rosterv1.OrganizationSpec{
			Notifications: rosterv1.Notifications{SMS: &rosterv1.SecretNotifications{SecretRef: rosterv1.LocalObjectReference{Name: "sms"}}}}},
		c: newCollab(modules(project), func(c *rosterv1.Collaboration) {
			c.Spec.Collaborator.Email, c.Spec.Collaborator.Phone = "", "+4915100000000"
		}),
		want: decisionWant{phase: rosterv1.CollaborationInvited, active: 1, notified: []string{"Project/website"},
			queue: []string{"u1/collaborator-added/Project/website/3"}, progress: working, reason: rosterv1.ReasonNotifying},
	}, {
		name: "the only added-message failed for good: stalled until the spec changes",
		org:  emailOrg(),
		c: newCollab(modules(project), notified("Project/website"), phase(rosterv1.CollaborationInvited),
			delivered(DeliveryFailed, "u1/collaborator-added/Project/website/3")),
		want: decisionWant{phase: rosterv1.CollaborationInvited, active: 1, progress: stalled, reason: rosterv1.ReasonMessageFailed,
			notifiedReason: rosterv1.ReasonMessageFailed},
	}, {
		name: "after a failed add, a change to spec tries again",
		org:  emailOrg(),
		c: newCollab(modules(project), notified("Project/website"), phase(rosterv1.CollaborationInvited),
			delivered(DeliveryFailed, "u1/collaborator-added/Project/website/2")),
		want: decisionWant{phase: rosterv1.CollaborationInvited, active: 1, notified: []string{"Project/website"},
			queue: []string{"u1/collaborator-added/Project/website/3"}, progress: working, reason: rosterv1.ReasonNotifying},
	}, {
		name: "only a module asked for on its link: PendingApproval, not counted, nobody told, not deleted",
		org:  emailOrg(),
		c:    newCollab(modules(asked)),
		want: decisionWant{phase: rosterv1.CollaborationPendingApproval, pending: 1, progress: settled,
			reason: rosterv1.ReasonModulesAwaitingApproval, notifiedReason: rosterv1.ReasonDelivered},
	}, {
		name: "PendingApproval stays so on the next pass",
		org:  emailOrg(),
		c:    newCollab(modules(asked), phase(rosterv1.CollaborationPendingApproval)),
		want: decisionWant{phase: rosterv1.CollaborationPendingApproval, pending: 1, progress: settled,
			reason: rosterv1.ReasonModulesAwaitingApproval, notifiedReason: rosterv1.ReasonDelivered},
	}, {
		name: "PendingApproval with Retain is not Removed",
		org:  emailOrg(),
		c: newCollab(modules(asked), phase(rosterv1.CollaborationPendingApproval),
			func(c *rosterv1.Collaboration) { c.Spec.CleanupPolicy = rosterv1.CleanupRetain }),
		want: decisionWant{phase: rosterv1.CollaborationPendingApproval, pending: 1, progress: settled,
			reason: rosterv1.ReasonModulesAwaitingApproval, notifiedReason: rosterv1.ReasonDelivered},
	}, {
		name: "approved: the person is told once, under the generation of the approval, and is Invited until delivered",
		org:  emailOrg(),
		c:    newCollab(modules(approvedNow(asked)), phase(rosterv1.CollaborationPendingApproval)),
		want: decisionWant{phase: rosterv1.CollaborationInvited, active: 1, notified: []string{"Project/apollo"},
			queue: []string{"u1/collaborator-added/Project/apollo/3"}, progress: working, reason: rosterv1.ReasonNotifying},
	}, {
		name: "a module with no approval, as written before approvals existed, is approved",
		org:  emailOrg(),
		c:    newCollab(modules(func() rosterv1.Module { m := asked; m.Approval = ""; return m }())),
		want: decisionWant{phase: rosterv1.CollaborationInvited, active: 1, notified: []string{"Project/apollo"},
			queue: []string{"u1/collaborator-added/Project/apollo/3"}, progress: working, reason: rosterv1.ReasonNotifying},
	}, {
		name: "declined (the entry removed) before anyone was told: nothing to tell, delete",
		org:  emailOrg(),
		c:    newCollab(phase(rosterv1.CollaborationPendingApproval)),
		want: decisionWant{phase: rosterv1.CollaborationRemoved, progress: working, reason: rosterv1.ReasonRemoving, deleted: true,
			notifiedReason: rosterv1.ReasonDelivered},
	}, {
		name: "an active person who asks for another module stays Active and Ready; the new one is not told",
		org:  emailOrg(),
		c: newCollab(modules(project, asked), notified("Project/website"), phase(rosterv1.CollaborationActive),
			delivered(DeliverySent, "u1/collaborator-added/Project/website/2")),
		want: decisionWant{phase: rosterv1.CollaborationActive, active: 1, pending: 1, notified: []string{"Project/website"},
			progress: settled, ready: true, reason: rosterv1.ReasonCollaborationActive, notifiedReason: rosterv1.ReasonDelivered},
	}, {
		name: "the last approved module removed while another waits: told of the removal, PendingApproval, not deleted",
		org:  emailOrg(),
		c: newCollab(modules(asked), notified("Project/website"), phase(rosterv1.CollaborationActive),
			delivered(DeliverySent, "u1/collaborator-added/Project/website/2")),
		want: decisionWant{phase: rosterv1.CollaborationPendingApproval, pending: 1, queue: []string{"u1/collaborator-removed/Project/website/3"},
			progress: working, reason: rosterv1.ReasonModulesAwaitingApproval},
	}, {
		name: "a pending module that expired counts for nothing: the collaboration goes",
		org:  emailOrg(),
		c: newCollab(modules(func() rosterv1.Module { m := asked; m.ExpiresAt = at(0); return m }()),
			phase(rosterv1.CollaborationPendingApproval)),
		want: decisionWant{phase: rosterv1.CollaborationRemoved, progress: working, reason: rosterv1.ReasonRemoving, deleted: true,
			notifiedReason: rosterv1.ReasonDelivered},
	}, {
		name: "without a channel a pending request is still PendingApproval",
		org:  &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: "ns"}},
		c:    newCollab(modules(asked)),
		want: decisionWant{phase: rosterv1.CollaborationPendingApproval, pending: 1, progress: settled,
			reason: rosterv1.ReasonModulesAwaitingApproval, notifiedReason: rosterv1.ReasonDelivered},
	}, {
		name: "no Organization: stalled, nothing else moves",
		c:    newCollab(modules(project)),
		want: decisionWant{progress: stalled, reason: rosterv1.ReasonOrganizationNotFound},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.c.DeepCopy()
			d := decideCollaboration(collaborationFacts{Collaboration: tc.c, Organization: tc.org}, decideNow)
			got := decisionWant{phase: d.Phase, active: d.ActiveModules, pending: d.PendingModules, notified: d.NotifiedModules, queue: queued(d), progress: d.Progress,
				ready: d.Ready, reason: d.Reason, deleted: d.Delete, requeue: d.RequeueAfter}
			if d.Notified != nil {
				got.notifiedReason = d.Notified.Reason
			}
			if !equalWant(got, tc.want) {
				t.Errorf("decision\n got %+v\nwant %+v", got, tc.want)
			}
			if d.Message == "" {
				t.Errorf("no message for reason %s", d.Reason)
			}
			if !equalCollab(before, tc.c) {
				t.Errorf("decide changed its input")
			}
		})
	}
}

func equalWant(a, b decisionWant) bool {
	return a.phase == b.phase && a.active == b.active && a.pending == b.pending && strings.Join(a.notified, ",") == strings.Join(b.notified, ",") &&
		strings.Join(a.queue, ",") == strings.Join(b.queue, ",") && a.progress == b.progress && a.ready == b.ready &&
		a.reason == b.reason && a.deleted == b.deleted && a.requeue == b.requeue && a.notifiedReason == b.notifiedReason
}

func equalCollab(a, b *rosterv1.Collaboration) bool {
	return a.Status.Phase == b.Status.Phase && strings.Join(a.Status.NotifiedModules, ",") == strings.Join(b.Status.NotifiedModules, ",") &&
		len(a.Status.Deliveries) == len(b.Status.Deliveries) && len(a.Status.Conditions) == len(b.Status.Conditions)
}

func TestDecideCollaborationBoundsMessagesUnderWay(t *testing.T) {
	var ms []rosterv1.Module
	for i := range 20 {
		ms = append(ms, rosterv1.Module{Kind: "File", Name: "f" + string(rune('a'+i))})
	}
	c := newCollab(modules(ms...), delivered(DeliverySending, "u1/collaborator-added/File/zz/3"))
	d := decideCollaboration(collaborationFacts{Collaboration: c, Organization: emailOrg()}, decideNow)
	if len(d.Queue) != maxPendingCollaborationMessages-1 {
		t.Fatalf("queued %d messages with one under way; want %d", len(d.Queue), maxPendingCollaborationMessages-1)
	}
	if d.Progress != working || len(d.NotifiedModules) != len(d.Queue) {
		t.Fatalf("the rest must wait: progress %v, notified %d", d.Progress, len(d.NotifiedModules))
	}
}

func TestCollaborationKeyFitsAndRoundTrips(t *testing.T) {
	c := newCollab()
	c.UID = "0123456789abcdef0123456789abcdef0123"
	long := strings.Repeat("n", 253)
	for _, name := range []string{"website", "a/b c", long} {
		for _, tmpl := range []notify.TemplateName{notify.TemplateCollaboratorAdded, notify.TemplateCollaboratorRemoved} {
			key := collaborationKey(c, tmpl, "Project", name)
			if len(key) > maxKeyLength {
				t.Errorf("key for %q is %d long", name, len(key))
			}
			got, id, ok := parseCollaborationKey(key)
			if !ok || got != tmpl || id != keyModule(c, "Project", name) {
				t.Errorf("parse %q = %q %q %v", key, got, id, ok)
			}
		}
	}
	if collaborationKey(c, notify.TemplateCollaboratorAdded, "Project", "website") != string(c.UID)+"/collaborator-added/Project/website/3" {
		t.Errorf("a plain name stands as it is")
	}
}

func TestDecideCollaborationPendingApprovalSaysHowToDecide(t *testing.T) {
	quoted := rosterv1.Module{Kind: "File", Name: "it's plan.xlsx", Approval: rosterv1.ModulePending}
	c := newCollab(modules(project, asked, quoted), notified("Project/website"), phase(rosterv1.CollaborationActive),
		delivered(DeliverySent, "u1/collaborator-added/Project/website/2"))
	c.Spec.Modules[0].Approval = rosterv1.ModulePending // the admin took the approval back
	d := decideCollaboration(collaborationFacts{Collaboration: c, Organization: emailOrg()}, decideNow)
	if d.Phase != rosterv1.CollaborationPendingApproval || d.Ready || d.PendingModules != 3 {
		t.Fatalf("phase %s ready %v pending %d", d.Phase, d.Ready, d.PendingModules)
	}
	for _, want := range []string{
		"Frank asked to join Project website, Project apollo, File it's plan.xlsx",
		`To approve: kubectl patch collab frank -n ns --type=json -p '[{"op":"test","path":"/spec/modules/0/kind","value":"Project"},` +
			`{"op":"test","path":"/spec/modules/0/name","value":"website"},{"op":"replace","path":"/spec/modules/0/approval","value":"Approved"},`,
		`{"op":"test","path":"/spec/modules/2/name","value":"it'\''s plan.xlsx"}`,
		// Declining removes the last entry first, so that the indexes of the others hold.
		`to decline, remove the entry: kubectl patch collab frank -n ns --type=json -p '[{"op":"test","path":"/spec/modules/2/kind"`,
	} {
		if !strings.Contains(d.Message, want) {
			t.Errorf("the message does not say\n%s\nit says\n%s", want, d.Message)
		}
	}

	var many []rosterv1.Module
	for i := range 256 {
		many = append(many, rosterv1.Module{Kind: "File", Name: strings.Repeat("x", 200) + string(rune('a'+i%26)) + strings.Repeat("y", i/26),
			Approval: rosterv1.ModulePending})
	}
	d = decideCollaboration(collaborationFacts{Collaboration: newCollab(modules(many...)), Organization: emailOrg()}, decideNow)
	if len(d.Message) > 32768 || !strings.Contains(d.Message, "253 more") || !strings.Contains(d.Message, "kubectl edit collab frank -n ns") {
		t.Errorf("with 256 modules waiting the message is %d long: %.300s", len(d.Message), d.Message)
	}
}
