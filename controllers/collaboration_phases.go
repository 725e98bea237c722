package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/notify"
)

// A Collaboration is reconciled in two steps: the reconciler gathers the facts (the object
// as read, its Organization, the time), and decideCollaboration, a pure function, says what
// follows from them. Only the reconciler talks to the API server and the channels.

// maxPendingCollaborationMessages bounds the messages a collaboration has under way at once.
// A Collaboration can list 256 modules, but status.deliveries keeps maxDeliveries records and
// makes room by dropping settled ones; with at most half of them sending, no record of a
// message still to be sent is ever dropped. The rest waits for the next pass.
const maxPendingCollaborationMessages = maxDeliveries / 2

// collaborationFacts is what a pass knows before it decides anything.
type collaborationFacts struct {
	// Collaboration as read; decideCollaboration does not change it.
	Collaboration *rosterv1.Collaboration
	// Organization it names; nil when there is none.
	Organization *rosterv1.Organization
}

// collaborationMessage is a message to record in the outbox.
type collaborationMessage struct {
	Key     string
	Channel notify.Channel
}

// collaborationEvent is an Event to record about the collaboration.
type collaborationEvent struct {
	Type, Reason, Note string
}

// conditionValue is a condition's status, reason and message.
type conditionValue struct {
	Status          metav1.ConditionStatus
	Reason, Message string
}

// collaborationDecision is what a pass does: the status to write, the messages to queue, the
// Events to record, and whether to delete the object.
type collaborationDecision struct {
	Phase           rosterv1.CollaborationPhase
	ActiveModules   int32
	PendingModules  int32
	NotifiedModules []string
	// Queue are the messages to record in status.deliveries and send.
	Queue  []collaborationMessage
	Events []collaborationEvent
	// Progress, Ready, Reason and Message go to conclude().
	Progress        progress
	Ready           bool
	Reason, Message string
	// Notified is the Notified condition; nil leaves it as it is.
	Notified *conditionValue
	// Delete deletes the collaboration: no module is left, the person was told, and
	// cleanupPolicy is Delete.
	Delete bool
	// RequeueAfter is when the next module expires; 0 when none will.
	RequeueAfter time.Duration
}

// changes reports whether acting on the decision does something that must happen only once
// (an Event, a message, a deletion), which the reconciler does only on a current copy.
func (d collaborationDecision) changes(c *rosterv1.Collaboration) bool {
	return len(d.Queue) > 0 || len(d.Events) > 0 || d.Delete || d.Phase != c.Status.Phase
}

// decideCollaboration derives a collaboration's phase, counts, messages and conditions from
// the facts. A module whose expiresAt is now or earlier has expired. Every module the person
// is added to is told once (collaborator-added) and recorded in status.notifiedModules;
// every recorded module that is no longer in spec, or expired, is told once
// (collaborator-removed) and forgotten. The person is told by email when they have an
// address and the organization an email channel, else by SMS likewise, else not at all.
// A Pending module (asked for on its link) is none of the person's modules yet: it is only
// counted in pendingModules; once an admin approves it, it is added and told like any
// other. A collaboration with only pending modules is PendingApproval and is never deleted.
func decideCollaboration(f collaborationFacts, now time.Time) collaborationDecision {
	c := f.Collaboration
	d := collaborationDecision{Phase: c.Status.Phase, ActiveModules: c.Status.ActiveModules, PendingModules: c.Status.PendingModules,
		NotifiedModules: c.Status.NotifiedModules}
	if f.Organization == nil {
		d.Progress, d.Reason = stalled, rosterv1.ReasonOrganizationNotFound
		d.Message = fmt.Sprintf("Organization %q does not exist in namespace %s; create it or fix spec.organizationRef",
			c.Spec.OrganizationRef.Name, c.Namespace)
		return d
	}
	who := c.Spec.Collaborator.DisplayName
	ch := collaborationChannel(c.Spec.Collaborator, f.Organization)

	// The modules the person is in now, those they asked for and wait for an admin (they are
	// not in them, so they count for nothing and nobody is told), and when the next of
	// either expires.
	var active []string
	var pendingIdx []int
	activeSet := map[string]bool{}
	expired := map[string]bool{}
	for i, m := range c.Spec.Modules {
		id := moduleID(m.Kind, m.Name)
		if m.ExpiresAt != nil && !now.Before(m.ExpiresAt.Time) {
			expired[id] = true
			continue
		}
		if m.IsPending() {
			pendingIdx = append(pendingIdx, i)
		} else {
			active, activeSet[id] = append(active, id), true
		}
		if m.ExpiresAt != nil {
			if after := m.ExpiresAt.Sub(now); d.RequeueAfter == 0 || after < d.RequeueAfter {
				d.RequeueAfter = after
			}
		}
	}
	d.ActiveModules = int32(len(active))
	d.PendingModules = int32(len(pendingIdx))

	// What the records say: the latest message about each module, and what is under way.
	byKeyModule := map[string]rosterv1.Delivery{}
	last := func(id string) (rosterv1.Delivery, bool) {
		kind, name, _ := strings.Cut(id, "/")
		rec, ok := byKeyModule[keyModule(c, rosterv1.ModuleKind(kind), name)]
		return rec, ok
	}
	pending := 0
	for _, rec := range c.Status.Deliveries {
		if rec.State == DeliverySending {
			pending++
		}
		if _, id, ok := parseCollaborationKey(rec.Key); ok {
			byKeyModule[id] = rec
		}
	}
	keys := map[string]bool{}
	for _, rec := range c.Status.Deliveries {
		keys[rec.Key] = true
	}
	room := maxPendingCollaborationMessages - pending
	waiting := false
	queue := func(tmpl notify.TemplateName, id string) {
		kind, name, _ := strings.Cut(id, "/")
		key := collaborationKey(c, tmpl, rosterv1.ModuleKind(kind), name)
		d.Queue = append(d.Queue, collaborationMessage{Key: key, Channel: ch})
		room--
	}

	// Removals first: the person hears they left a module before they hear of the next.
	var notified []string
	for _, id := range c.Status.NotifiedModules {
		rec, seen := last(id)
		addFailed := seen && keyTemplate(rec.Key) == notify.TemplateCollaboratorAdded && rec.State == DeliveryFailed
		switch {
		case activeSet[id] && !addFailed:
			notified = append(notified, id)
		case activeSet[id]:
			// Adding failed for good: the person does not know; try again below under a key
			// of this generation, which a change to spec makes new.
		case addFailed || ch == "":
			// They never heard of it, or cannot be told; forget it.
			d.Events = append(d.Events, moduleLeftEvent(id, expired[id], "they could not be told"))
		case room > 0:
			queue(notify.TemplateCollaboratorRemoved, id)
			d.Events = append(d.Events, moduleLeftEvent(id, expired[id], "telling them by "+string(ch)))
		default:
			notified = append(notified, id)
			waiting = true
		}
	}
	told := map[string]bool{}
	for _, id := range notified {
		told[id] = true
	}
	var failed []string
	queuedNow := map[string]bool{}
	for _, id := range active {
		if told[id] || ch == "" {
			continue
		}
		kind, name, _ := strings.Cut(id, "/")
		if keys[collaborationKey(c, notify.TemplateCollaboratorAdded, rosterv1.ModuleKind(kind), name)] {
			// This very message failed before; a change to spec sends it again.
			failed = append(failed, id)
			continue
		}
		if room <= 0 {
			waiting = true
			continue
		}
		queue(notify.TemplateCollaboratorAdded, id)
		notified = append(notified, id)
		queuedNow[id] = true
		d.Events = append(d.Events, collaborationEvent{corev1.EventTypeNormal, rosterv1.EventModuleAdded,
			fmt.Sprintf("Added to %s; telling them by %s", strings.Replace(id, "/", " ", 1), ch)})
	}
	d.NotifiedModules = notified

	// The phase: Invited until the person heard of one of their modules, then Active.
	heard := ch == ""
	for _, id := range notified {
		// A module without records was told long ago (its records made room for newer ones).
		if rec, seen := last(id); activeSet[id] && !queuedNow[id] && (!seen || keyTemplate(rec.Key) == notify.TemplateCollaboratorAdded && rec.State == DeliverySent) {
			heard = true
		}
	}
	switch {
	case len(active) == 0 && len(pendingIdx) > 0:
		d.Phase = rosterv1.CollaborationPendingApproval
	case len(active) == 0:
		d.Phase = rosterv1.CollaborationRemoved
	case heard:
		d.Phase = rosterv1.CollaborationActive
	default:
		d.Phase = rosterv1.CollaborationInvited
	}
	if d.Phase != c.Status.Phase {
		d.Events = append(d.Events, phaseEvent(who, d.Phase, len(active)))
	}

	underWay := pending+len(d.Queue) > 0 || waiting
	d.Notified = notifiedCondition(c, f.Organization, ch, len(active), failed, last, byKeyModule, underWay)
	cmd := fmt.Sprintf("kubectl get collab %s -n %s -o yaml", c.Name, c.Namespace)
	switch {
	case len(active) == 0 && len(pendingIdx) > 0:
		// An admin decides; to kstatus the object is InProgress (Ready False), as a Member
		// awaiting approval is, and Reconciling while a message about a module they left is
		// still under way. It is never deleted: the request stands until an admin decides.
		d.Progress = map[bool]progress{true: working, false: settled}[underWay]
		d.Reason = rosterv1.ReasonModulesAwaitingApproval
		d.Message = fmt.Sprintf("%s asked to join %s and is in no module until an admin approves. %s",
			who, pendingList(c, pendingIdx), approvalCommands(c, pendingIdx))
	case len(active) == 0 && underWay:
		d.Progress, d.Reason = working, rosterv1.ReasonRemoving
		d.Message = fmt.Sprintf("In no module any more; telling %s before the Collaboration is %s", who,
			map[bool]string{true: "kept as Removed", false: "deleted"}[c.Spec.CleanupPolicy == rosterv1.CleanupRetain])
	case len(active) == 0 && c.Spec.CleanupPolicy == rosterv1.CleanupRetain:
		// What the spec asks for: Ready, and Current to kstatus.
		d.Progress, d.Ready, d.Reason = settled, true, rosterv1.ReasonCollaborationRemoved
		d.Message = fmt.Sprintf("In no module any more; the record is kept (cleanupPolicy Retain). To add them to a module again: "+
			`kubectl patch collab %s -n %s --type=json -p '[{"op":"add","path":"/spec/modules/-","value":{"kind":"Project","name":"NAME"}}]'`+
			"; to delete it: kubectl delete collab %s -n %s", c.Name, c.Namespace, c.Name, c.Namespace)
	case len(active) == 0:
		d.Delete = true
		d.Progress, d.Reason, d.Message = working, rosterv1.ReasonRemoving, "In no module any more and told; deleting the Collaboration"
	case underWay:
		d.Progress, d.Ready, d.Reason = working, d.Phase == rosterv1.CollaborationActive, rosterv1.ReasonNotifying
		d.Message = fmt.Sprintf("In %d module(s); telling %s about the changes (see status.deliveries: %s)", len(active), who, cmd)
	case d.Phase == rosterv1.CollaborationInvited:
		// Every message adding them failed for good: nothing moves until someone fixes it.
		d.Progress, d.Reason = stalled, rosterv1.ReasonMessageFailed
		d.Message = d.Notified.Message
	default:
		d.Progress, d.Ready, d.Reason = settled, true, rosterv1.ReasonCollaborationActive
		d.Message = fmt.Sprintf("In %d module(s)", len(active))
		if d.RequeueAfter > 0 {
			d.Message += fmt.Sprintf("; the next expires at %s", now.Add(d.RequeueAfter).UTC().Format(time.RFC3339))
		}
	}
	if len(active) > 0 && len(pendingIdx) > 0 {
		// The person is in their other modules; the ones they asked for wait, and the message
		// says how to decide.
		d.Message += fmt.Sprintf(". Also asked to join %s, awaiting approval. %s", pendingList(c, pendingIdx), approvalCommands(c, pendingIdx))
	}
	return d
}

// maxPendingInMessage bounds the modules a condition message names and gives commands for:
// a condition message holds 32768 characters, and a Collaboration can list 256 modules.
const maxPendingInMessage = 3

// pendingList names the modules at idx for a message: "Project apollo, File plan.xlsx".
func pendingList(c *rosterv1.Collaboration, idx []int) string {
	var names []string
	for _, i := range idx[:min(len(idx), maxPendingInMessage)] {
		names = append(names, string(c.Spec.Modules[i].Kind)+" "+c.Spec.Modules[i].Name)
	}
	if n := len(idx) - maxPendingInMessage; n > 0 {
		names = append(names, fmt.Sprintf("%d more", n))
	}
	return strings.Join(names, ", ")
}

// approvalCommands are the kubectl commands that approve, or decline, the modules at idx
// (the first few of them; past those, kubectl edit). Each JSON patch tests the module's
// kind and name before it touches the entry, so that a list that changed meanwhile makes the
// command fail rather than decide on another module.
func approvalCommands(c *rosterv1.Collaboration, idx []int) string {
	var approve, decline []string
	var more string
	if len(idx) > maxPendingInMessage {
		idx = idx[:maxPendingInMessage]
		more = fmt.Sprintf(" ; for the rest: kubectl edit collab %s -n %s and set approval: Approved, or remove the entry", c.Name, c.Namespace)
	}
	for _, i := range idx {
		m := c.Spec.Modules[i]
		test := fmt.Sprintf(`{"op":"test","path":"/spec/modules/%d/kind","value":%s},{"op":"test","path":"/spec/modules/%d/name","value":%s}`,
			i, jsonString(string(m.Kind)), i, jsonString(m.Name))
		approve = append(approve, test+fmt.Sprintf(`,{"op":"replace","path":"/spec/modules/%d/approval","value":"Approved"}`, i))
		decline = append(decline, test+fmt.Sprintf(`,{"op":"remove","path":"/spec/modules/%d"}`, i))
	}
	// Removing entries from the end first keeps the indexes of the others right.
	slices.Reverse(decline)
	patch := func(ops []string) string {
		return fmt.Sprintf("kubectl patch collab %s -n %s --type=json -p %s", c.Name, c.Namespace, shellQuote("["+strings.Join(ops, ",")+"]"))
	}
	return fmt.Sprintf("To approve: %s ; to decline, remove the entry: %s%s", patch(approve), patch(decline), more)
}

// jsonString is s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// shellQuote quotes s for a POSIX shell in single quotes.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// notifiedCondition says whether the person hears about their modules; nil while messages
// are still under way and nothing failed.
func notifiedCondition(c *rosterv1.Collaboration, org *rosterv1.Organization, ch notify.Channel, active int,
	failed []string, last func(string) (rosterv1.Delivery, bool), byKeyModule map[string]rosterv1.Delivery, underWay bool) *conditionValue {
	who := c.Spec.Collaborator.DisplayName
	edit := fmt.Sprintf("kubectl edit collab %s -n %s", c.Name, c.Namespace)
	if ch == "" {
		if active == 0 && len(c.Status.NotifiedModules) == 0 {
			return &conditionValue{metav1.ConditionTrue, rosterv1.ReasonDelivered, "Nothing to tell"}
		}
		return &conditionValue{metav1.ConditionFalse, rosterv1.ReasonNoNotificationChannel, fmt.Sprintf(
			"%s is not told about their modules: it takes the collaborator's email and the Organization's email channel, or their phone "+
				"and its SMS channel. Set spec.notifications on the Organization (kubectl edit org %s -n %s) or give the collaborator "+
				"an email or phone (%s); they are then told about the modules they are in", who, org.Name, org.Namespace, edit)}
	}
	var problems []string
	for _, id := range failed {
		rec, _ := last(id)
		problems = append(problems, fmt.Sprintf("%s: %s", id, rec.Error))
	}
	for id, rec := range byKeyModule {
		if rec.State == DeliveryFailed && keyTemplate(rec.Key) == notify.TemplateCollaboratorRemoved {
			problems = append(problems, fmt.Sprintf("removal from %s: %s", id, rec.Error))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return &conditionValue{metav1.ConditionFalse, rosterv1.ReasonMessageFailed, fmt.Sprintf(
			"Could not tell %s about %s. Fix the collaborator's address (%s) or the Organization's %s channel (kubectl edit org %s -n %s); "+
				"any change to the Collaboration's spec sends the messages about its current modules again",
			who, strings.Join(problems, "; "), edit, ch, org.Name, org.Namespace)}
	}
	if underWay {
		return nil
	}
	return &conditionValue{metav1.ConditionTrue, rosterv1.ReasonDelivered, "Every message about the person's modules was delivered"}
}

// collaborationChannel picks how the person is told: by email when they have an address and
// the organization an email channel, else by SMS likewise; "" when neither.
func collaborationChannel(p rosterv1.Collaborator, org *rosterv1.Organization) notify.Channel {
	switch n := org.Spec.Notifications; {
	case p.Email != "" && n.Email != nil:
		return notify.ChannelEmail
	case p.Phone != "" && n.SMS != nil:
		return notify.ChannelSMS
	}
	return ""
}

func moduleLeftEvent(id string, expired bool, how string) collaborationEvent {
	reason, what := rosterv1.EventModuleRemoved, "Removed from"
	if expired {
		reason, what = rosterv1.EventModuleExpired, "Time ran out in"
	}
	return collaborationEvent{corev1.EventTypeNormal, reason, fmt.Sprintf("%s %s; %s", what, strings.Replace(id, "/", " ", 1), how)}
}

func phaseEvent(who string, to rosterv1.CollaborationPhase, modules int) collaborationEvent {
	switch to {
	case rosterv1.CollaborationInvited:
		return collaborationEvent{corev1.EventTypeNormal, rosterv1.EventCollaborationInvited, fmt.Sprintf("%s was added to %d module(s) and is being told", who, modules)}
	case rosterv1.CollaborationActive:
		return collaborationEvent{corev1.EventTypeNormal, rosterv1.EventCollaborationActivated, fmt.Sprintf("%s is active in %d module(s)", who, modules)}
	case rosterv1.CollaborationPendingApproval:
		return collaborationEvent{corev1.EventTypeNormal, rosterv1.EventCollaborationPendingApproval,
			fmt.Sprintf("%s asked to join modules on their links and waits for an admin's approval (see the Ready condition for the command)", who)}
	}
	return collaborationEvent{corev1.EventTypeNormal, rosterv1.EventCollaborationRemoved, fmt.Sprintf("%s is in no module any more", who)}
}

// moduleID is how status.notifiedModules names a module: kind/name.
func moduleID(kind rosterv1.ModuleKind, name string) string { return string(kind) + "/" + name }

// maxKeyLength is status.deliveries[].key's limit.
const maxKeyLength = 253

var keyUnsafe = regexp.MustCompile(`[^A-Za-z0-9._:@+-]`)

// collaborationKey is the idempotency key of the message template tmpl about a module, in
// the collaboration's current generation: "<uid>/<template>/<kind>/<name>/<generation>". A
// module is added and removed at most once each per generation (adding it back takes a
// change to spec), so the key is never reused for another message.
func collaborationKey(c *rosterv1.Collaboration, tmpl notify.TemplateName, kind rosterv1.ModuleKind, name string) string {
	return fmt.Sprintf("%s/%s/%s/%s", c.UID, tmpl, keyModule(c, kind, name), strconv.FormatInt(c.Generation, 10))
}

// keyModule is how a module stands in its messages' keys: kind/name, or, for a name that is
// long or has characters a mail or HTTP header cannot carry, kind/ its readable part and a
// hash, short enough for the longest key.
func keyModule(c *rosterv1.Collaboration, kind rosterv1.ModuleKind, name string) string {
	// The budget does not depend on the generation, so a module keeps its form in the keys
	// of every generation.
	const generationDigits = 19
	budget := maxKeyLength - len(fmt.Sprintf("%s/%s/%s//", c.UID, notify.TemplateCollaboratorRemoved, kind)) - generationDigits
	if !keyUnsafe.MatchString(name) && len(name) <= budget {
		return moduleID(kind, name)
	}
	sum := sha256.Sum256([]byte(name))
	tail := "~" + hex.EncodeToString(sum[:])[:12]
	readable := keyUnsafe.ReplaceAllString(name, "-")
	if n := budget - len(tail); len(readable) > n {
		readable = readable[:max(n, 0)]
	}
	return moduleID(kind, readable+tail)
}

// parseCollaborationKey reads a key collaborationKey made: its template and the module as
// kind/name (for a hashed name, the name as it stands in the key).
func parseCollaborationKey(key string) (notify.TemplateName, string, bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 5 {
		return "", "", false
	}
	tmpl := notify.TemplateName(parts[1])
	if tmpl != notify.TemplateCollaboratorAdded && tmpl != notify.TemplateCollaboratorRemoved {
		return "", "", false
	}
	return tmpl, parts[2] + "/" + parts[3], true
}

// keyTemplate is the template of a collaboration message's key, "" for any other key.
func keyTemplate(key string) notify.TemplateName {
	tmpl, _, _ := parseCollaborationKey(key)
	return tmpl
}
