package v1alpha1

// Fuzz targets for the admission webhooks (issue 12). Each feeds an object (JSON, seeded
// from config/samples and from the shapes the other tests use) and a byte string of
// operations into the admission pipeline of fuzz_harness_test.go: the bytes pick who asks
// (fzUsers), the operation (create, update, update of status, delete), and field changes,
// some to the stored object and the rest to the new one. Then they check properties, not
// just that nothing panics:
//
//   - the same request gets the same decision, twice over, each on a fresh world;
//   - a refusal is an API status error, never an internal error (the world is well formed);
//   - nobody gets an admitted change the threat model keeps from them: only admins change
//     approval, role, access and work details, nobody above their own role; only Roster
//     writes status (the portal its few fields) and moves an object between shards; the
//     recorded identity (invitedBy, inviterRole, provenance) never changes; only the person
//     (through the portal, or as themselves) changes a signed-up person's name, email and
//     phone; creates come only from those allowed to make them;
//   - the mutating webhooks are idempotent: defaulting their own output changes nothing.
//
// `make fuzz` runs each target; plain `go test` runs the seeds and testdata/fuzz. With
// ROSTER_FUZZ_LOG=1 every decision is logged.

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
)

// Values the field changes pick from: the world's names, roles and states, and hostile text.
var (
	fzStrings = []string{"", "alice@acme.example", "gina", "dana", "adam", "mia", "pete", "tess", "oscar", fzPortal, fzManager,
		"acme", "x@mail.example", "+4915112345678", "<b>Mallory</b>", "a\r\nBcc: eve@evil.example", "<!channel>", "Ünïcødé ✓",
		strings.Repeat("long", 70)}
	fzRoles     = []rosterv1.Role{"", rosterv1.RoleMember, rosterv1.RoleAdmin, rosterv1.RoleAccountAdmin, rosterv1.RoleSuperAdmin, "Owner"}
	fzApprovals = []rosterv1.Approval{rosterv1.ApprovalNone, rosterv1.ApprovalApproved, rosterv1.ApprovalRejected, "Maybe"}
	fzOrgs      = []string{"acme", "doomed", "ghost", ""}
	fzTimes     = []*metav1.Time{nil, {Time: fzNow.Add(-time.Hour)}, {Time: fzNow.Add(time.Hour)}}
)

func pick[E any](s []E, v byte) E { return s[int(v)%len(s)] }

// fzMutator changes one field.
type fzMutator[T client.Object] struct {
	name string
	set  func(T, byte)
}

// metadataMutators change what every kind has: the shard label, other labels, annotations,
// finalizers, owners and the name.
func metadataMutators[T client.Object]() []fzMutator[T] {
	setLabel := func(o T, key string, v *string) {
		l := maps.Clone(o.GetLabels())
		if l == nil {
			l = map[string]string{}
		}
		if v == nil {
			delete(l, key)
		} else {
			l[key] = *v
		}
		o.SetLabels(l)
	}
	return []fzMutator[T]{
		{"shard", func(o T, v byte) {
			setLabel(o, rosterv1.LabelShard, pick([]*string{nil, new(""), new("a"), new("b")}, v))
		}},
		{"label", func(o T, v byte) { setLabel(o, "team", pick([]*string{nil, new("x")}, v)) }},
		{"seat", func(o T, v byte) { setLabel(o, rosterv1.LabelSeat, pick([]*string{nil, new("true"), new("")}, v)) }},
		{"annotation", func(o T, v byte) {
			a := maps.Clone(o.GetAnnotations())
			if a == nil {
				a = map[string]string{}
			}
			if v%2 == 0 {
				delete(a, "note")
			} else {
				a["note"] = pick(fzStrings, v/2)
			}
			o.SetAnnotations(a)
		}},
		{"finalizer", func(o T, v byte) {
			o.SetFinalizers(pick([][]string{nil, {rosterv1.Finalizer}, {"example.com/hold"}}, v))
		}},
		{"owner", func(o T, v byte) {
			o.SetOwnerReferences(pick([][]metav1.OwnerReference{nil, {{APIVersion: rosterv1.GroupVersion.String(), Kind: "Invitation",
				Name: "bob", UID: "uid-bob", Controller: new(true), BlockOwnerDeletion: new(true)}}}, v))
		}},
		{"name", func(o T, v byte) { o.SetName(pick([]string{"fuzz", "mia", "dana", "acme", "bob", "erin-support"}, v)) }},
	}
}

var memberKind = &fzKind[*rosterv1.Member]{
	kind: "Member", crd: "org.roster.dev_members.yaml",
	newObj:    func() *rosterv1.Member { return &rosterv1.Member{} },
	defaulter: func(g *gate) admission.Defaulter[*rosterv1.Member] { return &memberDefaulter{g} },
	validator: func(g *gate) admission.Validator[*rosterv1.Member] { return &memberValidator{g} },
	setStatus: func(dst, src *rosterv1.Member) { dst.Status = *src.Status.DeepCopy() },
	mutators: append([]fzMutator[*rosterv1.Member]{
		{"org", func(m *rosterv1.Member, v byte) { m.Spec.OrganizationRef.Name = pick(fzOrgs, v) }},
		{"username", func(m *rosterv1.Member, v byte) { m.Spec.Username = pick(fzStrings, v) }},
		{"displayName", func(m *rosterv1.Member, v byte) { m.Spec.DisplayName = pick(fzStrings, v) }},
		{"email", func(m *rosterv1.Member, v byte) { m.Spec.Email = pick(fzStrings, v) }},
		{"phone", func(m *rosterv1.Member, v byte) { m.Spec.Phone = pick(fzStrings, v) }},
		{"role", func(m *rosterv1.Member, v byte) { m.Spec.Role = pick(fzRoles, v) }},
		{"approval", func(m *rosterv1.Member, v byte) { m.Spec.Approval = pick(fzApprovals, v) }},
		{"access", func(m *rosterv1.Member, v byte) {
			m.Spec.Access = pick([]rosterv1.Access{"", rosterv1.AccessActive, rosterv1.AccessTerminated}, v)
		}},
		{"department", func(m *rosterv1.Member, v byte) { m.Spec.Department = pick(fzStrings, v) }},
		{"joinMethod", func(m *rosterv1.Member, v byte) {
			m.Spec.Provenance.JoinMethod = pick([]rosterv1.JoinMethod{"", rosterv1.JoinMethodInvitation, rosterv1.JoinMethodPublicLink,
				rosterv1.JoinMethodDoorNumber, rosterv1.JoinMethodContact, rosterv1.JoinMethodImport}, v)
		}},
		{"invitedBy", func(m *rosterv1.Member, v byte) { m.Spec.Provenance.InvitedBy = pick(fzStrings, v) }},
		{"inviterRole", func(m *rosterv1.Member, v byte) { m.Spec.Provenance.InviterRole = pick(fzRoles, v) }},
		{"approvalBy", func(m *rosterv1.Member, v byte) { m.Spec.Provenance.ApprovalBy = pick(fzStrings, v) }},
		{"phase", func(m *rosterv1.Member, v byte) {
			m.Status.Phase = pick([]rosterv1.MemberPhase{"", rosterv1.MemberInactivated, rosterv1.MemberPending, rosterv1.MemberActive,
				rosterv1.MemberRejected, rosterv1.MemberTerminated}, v)
		}},
		{"usernameClaimed", func(m *rosterv1.Member, v byte) { m.Status.UsernameClaimed = v%2 == 1 }},
		{"lastLoginAt", func(m *rosterv1.Member, v byte) { m.Status.LastLoginAt = pick(fzTimes, v) }},
		{"signedUpAt", func(m *rosterv1.Member, v byte) { m.Status.SignedUpAt = pick(fzTimes, v) }},
	}, metadataMutators[*rosterv1.Member]()...),
}

var invitationKind = &fzKind[*rosterv1.Invitation]{
	kind: "Invitation", crd: "org.roster.dev_invitations.yaml",
	newObj:    func() *rosterv1.Invitation { return &rosterv1.Invitation{} },
	defaulter: func(g *gate) admission.Defaulter[*rosterv1.Invitation] { return &invitationDefaulter{g} },
	validator: func(g *gate) admission.Validator[*rosterv1.Invitation] { return &invitationValidator{g} },
	setStatus: func(dst, src *rosterv1.Invitation) { dst.Status = *src.Status.DeepCopy() },
	mutators: append([]fzMutator[*rosterv1.Invitation]{
		{"org", func(i *rosterv1.Invitation, v byte) { i.Spec.OrganizationRef.Name = pick(fzOrgs, v) }},
		{"method", func(i *rosterv1.Invitation, v byte) {
			i.Spec.Method = pick([]rosterv1.InvitationMethod{"", rosterv1.InvitationMethodEmail, rosterv1.InvitationMethodPhone,
				rosterv1.InvitationMethodLink, rosterv1.InvitationMethodContact}, v)
		}},
		{"inviteeName", func(i *rosterv1.Invitation, v byte) { i.Spec.Invitee.Name = pick(fzStrings, v) }},
		{"inviteeEmail", func(i *rosterv1.Invitation, v byte) { i.Spec.Invitee.Email = pick(fzStrings, v) }},
		{"inviteePhone", func(i *rosterv1.Invitation, v byte) { i.Spec.Invitee.Phone = pick(fzStrings, v) }},
		{"inviteeUsername", func(i *rosterv1.Invitation, v byte) { i.Spec.Invitee.Username = pick(fzStrings, v) }},
		{"department", func(i *rosterv1.Invitation, v byte) { i.Spec.Department = pick(fzStrings, v) }},
		{"role", func(i *rosterv1.Invitation, v byte) { i.Spec.Role = pick(fzRoles, v) }},
		{"resendRequests", func(i *rosterv1.Invitation, v byte) { i.Spec.ResendRequests = int32(v % 4) }},
		{"invitedBy", func(i *rosterv1.Invitation, v byte) { i.Spec.InvitedBy = pick(fzStrings, v) }},
		{"inviterRole", func(i *rosterv1.Invitation, v byte) { i.Spec.InviterRole = pick(fzRoles, v) }},
		{"phase", func(i *rosterv1.Invitation, v byte) {
			i.Status.Phase = pick([]rosterv1.InvitationPhase{"", rosterv1.InvitationPending, rosterv1.InvitationSent,
				rosterv1.InvitationAccepted, rosterv1.InvitationExpired, rosterv1.InvitationFailed}, v)
		}},
		{"memberRef", func(i *rosterv1.Invitation, v byte) {
			i.Status.MemberRef = pick([]*rosterv1.LocalObjectReference{nil, {Name: "mia"}, {Name: "bob"}}, v)
		}},
	}, metadataMutators[*rosterv1.Invitation]()...),
}

var fzTeams = [][]rosterv1.TeamMember{nil, {{Member: "dana", Lead: true}}, {{Member: "mia"}}, {{Member: "dana", Lead: true}, {Member: "adam", Lead: true}},
	{{Member: "oscar"}}, {{Member: "adam", Lead: true}, {Member: "mia"}}, {{Member: "pete", Lead: true}}, {{Member: "dana"}}}

var externalUserKind = &fzKind[*rosterv1.ExternalUser]{
	kind: "ExternalUser", crd: "org.roster.dev_externalusers.yaml",
	newObj:    func() *rosterv1.ExternalUser { return &rosterv1.ExternalUser{} },
	validator: func(g *gate) admission.Validator[*rosterv1.ExternalUser] { return &externalUserValidator{g} },
	setStatus: func(dst, src *rosterv1.ExternalUser) { dst.Status = *src.Status.DeepCopy() },
	mutators: append([]fzMutator[*rosterv1.ExternalUser]{
		{"org", func(x *rosterv1.ExternalUser, v byte) { x.Spec.OrganizationRef.Name = pick(fzOrgs, v) }},
		{"application", func(x *rosterv1.ExternalUser, v byte) {
			x.Spec.Application = pick([]string{"support-portal", "wiki", "legacy", "ghost", ""}, v)
		}},
		{"displayName", func(x *rosterv1.ExternalUser, v byte) { x.Spec.DisplayName = pick(fzStrings, v) }},
		{"email", func(x *rosterv1.ExternalUser, v byte) { x.Spec.Email = pick(fzStrings, v) }},
		{"phone", func(x *rosterv1.ExternalUser, v byte) { x.Spec.Phone = pick(fzStrings, v) }},
		{"company", func(x *rosterv1.ExternalUser, v byte) { x.Spec.Company = pick(fzStrings, v) }},
		{"access", func(x *rosterv1.ExternalUser, v byte) {
			x.Spec.Access = pick([]rosterv1.ExternalAccess{"", rosterv1.ExternalAccessEnabled, rosterv1.ExternalAccessLocked}, v)
		}},
		{"approval", func(x *rosterv1.ExternalUser, v byte) { x.Spec.Approval = pick(fzApprovals, v) }},
		{"team", func(x *rosterv1.ExternalUser, v byte) { x.Spec.Team = slices.Clone(pick(fzTeams, v)) }},
		{"linkGeneration", func(x *rosterv1.ExternalUser, v byte) { x.Spec.Invitation.LinkGeneration = int64(v % 3) }},
		{"resendConfirmation", func(x *rosterv1.ExternalUser, v byte) { x.Spec.ResendConfirmationRequests = int32(v % 3) }},
		{"selfRegistered", func(x *rosterv1.ExternalUser, v byte) { x.Status.SelfRegistered = v%2 == 1 }},
		{"emailVerified", func(x *rosterv1.ExternalUser, v byte) { x.Status.EmailVerified = v%2 == 1 }},
		{"registeredAt", func(x *rosterv1.ExternalUser, v byte) { x.Status.RegisteredAt = pick(fzTimes, v) }},
		{"lastLoginAt", func(x *rosterv1.ExternalUser, v byte) { x.Status.LastLoginAt = pick(fzTimes, v) }},
		{"phase", func(x *rosterv1.ExternalUser, v byte) {
			x.Status.Phase = pick([]rosterv1.ExternalUserPhase{"", rosterv1.ExternalUserInvited, rosterv1.ExternalUserPendingApproval,
				rosterv1.ExternalUserActive, rosterv1.ExternalUserWaitingForSeat}, v)
		}},
		{"seatSince", func(x *rosterv1.ExternalUser, v byte) { x.Status.SeatSince = pick(fzTimes, v) }},
	}, metadataMutators[*rosterv1.ExternalUser]()...),
}

var collaborationKind = &fzKind[*rosterv1.Collaboration]{
	kind: "Collaboration", crd: "org.roster.dev_collaborations.yaml",
	newObj:    func() *rosterv1.Collaboration { return &rosterv1.Collaboration{} },
	validator: func(g *gate) admission.Validator[*rosterv1.Collaboration] { return &collaborationValidator{g} },
	setStatus: func(dst, src *rosterv1.Collaboration) { dst.Status = *src.Status.DeepCopy() },
	mutators: append([]fzMutator[*rosterv1.Collaboration]{
		{"org", func(c *rosterv1.Collaboration, v byte) { c.Spec.OrganizationRef.Name = pick(fzOrgs, v) }},
		{"collaboratorName", func(c *rosterv1.Collaboration, v byte) { c.Spec.Collaborator.DisplayName = pick(fzStrings, v) }},
		{"collaboratorEmail", func(c *rosterv1.Collaboration, v byte) { c.Spec.Collaborator.Email = pick(fzStrings, v) }},
		{"modules", func(c *rosterv1.Collaboration, v byte) {
			c.Spec.Modules = slices.Clone(pick([][]rosterv1.Module{nil, {{Kind: "Project", Name: "website-relaunch", Role: "editor"}},
				{{Kind: "File", Name: "brand-guide.pdf", Role: "viewer", ExpiresAt: &metav1.Time{Time: fzNow.Add(-time.Hour)}}}}, v))
		}},
		{"cleanupPolicy", func(c *rosterv1.Collaboration, v byte) {
			c.Spec.CleanupPolicy = pick([]rosterv1.CleanupPolicy{"", rosterv1.CleanupDelete, rosterv1.CleanupRetain}, v)
		}},
		{"phase", func(c *rosterv1.Collaboration, v byte) {
			c.Status.Phase = pick([]rosterv1.CollaborationPhase{"", rosterv1.CollaborationInvited, rosterv1.CollaborationActive, rosterv1.CollaborationRemoved}, v)
		}},
		{"activeModules", func(c *rosterv1.Collaboration, v byte) { c.Status.ActiveModules = int32(v % 3) }},
	}, metadataMutators[*rosterv1.Collaboration]()...),
}

var organizationKind = &fzKind[*rosterv1.Organization]{
	kind: "Organization", crd: "org.roster.dev_organizations.yaml",
	newObj:    func() *rosterv1.Organization { return &rosterv1.Organization{} },
	validator: func(g *gate) admission.Validator[*rosterv1.Organization] { return &organizationValidator{g} },
	setStatus: func(dst, src *rosterv1.Organization) { dst.Status = *src.Status.DeepCopy() },
	mutators: append([]fzMutator[*rosterv1.Organization]{
		{"orgName", func(o *rosterv1.Organization, v byte) {
			o.Name = pick([]string{"acme", "doomed", "ghost", "initech"}, v)
		}},
		{"displayName", func(o *rosterv1.Organization, v byte) { o.Spec.DisplayName = pick(fzStrings, v) }},
		{"door", func(o *rosterv1.Organization, v byte) {
			o.Spec.DoorNumber = pick([]string{"", fzDoor, "4711002", "12"}, v)
		}},
		{"admins", func(o *rosterv1.Organization, v byte) {
			o.Spec.Admins = slices.Clone(pick([][]rosterv1.Subject{nil, {{Kind: "User", Name: "alice@acme.example"}}, {{Kind: "User", Name: "mia"}},
				{{Kind: "Group", Name: "acme:people-ops"}}, {{Kind: "User", Name: "alice@acme.example"}, {Kind: "User", Name: "oscar"}},
				{{Kind: "Group", Name: "system:authenticated"}}}, v))
		}},
		{"publicInvitation", func(o *rosterv1.Organization, v byte) { o.Spec.PublicInvitation.Enabled = v%2 == 1 }},
		{"plan", func(o *rosterv1.Organization, v byte) {
			o.Spec.Plan = pick([]rosterv1.Plan{"", rosterv1.PlanFree, rosterv1.PlanPaid}, v)
		}},
		{"importQuota", func(o *rosterv1.Organization, v byte) {
			o.Spec.ImportQuota = pick([]*rosterv1.ImportQuota{nil, {PerUserPerDay: new(int32(50))}, {PerUserPerDay: new(int32(1000))}}, v)
		}},
		{"seats", func(o *rosterv1.Organization, v byte) {
			if len(o.Spec.Applications) > 0 {
				o.Spec.Applications[0].License.Seats = int32(v % 40)
			}
		}},
		{"portalURL", func(o *rosterv1.Organization, v byte) {
			o.Spec.PortalURL = pick([]string{"", "https://join.acme.example", "https://evil.example"}, v)
		}},
		{"statusDoor", func(o *rosterv1.Organization, v byte) { o.Status.DoorNumber = pick([]string{"", fzDoor, "4711002"}, v) }},
		{"statusShard", func(o *rosterv1.Organization, v byte) { o.Status.Shard = pick([]string{"", "a", "b"}, v) }},
	}, metadataMutators[*rosterv1.Organization]()...),
}

// fzOps reads the operation bytes: who asks, what operation, how many of the changes go to
// the stored object, then (field, value) pairs.
const fzMaxChanges = 16

func fzDecode[T client.Object](k *fzKind[T], object, ops []byte) (fzCase[T], bool) {
	var c fzCase[T]
	base := k.newObj()
	if err := json.Unmarshal(object, base); err != nil {
		// Most byte strings are not JSON: they stand for one of the seed objects instead, so
		// that every input asks something.
		if len(k.bases) == 0 {
			return c, false
		}
		sum := 0
		for _, b := range object {
			sum += int(b)
		}
		base = k.newObj()
		if err := json.Unmarshal(k.bases[sum%len(k.bases)], base); err != nil {
			return c, false
		}
	}
	gvk := rosterv1.GroupVersion.WithKind(k.kind)
	base.GetObjectKind().SetGroupVersionKind(gvk)
	base.SetNamespace(fzNS)
	if base.GetName() == "" {
		base.SetName("fuzz")
	}
	// What the API server owns in metadata does not come from a client.
	base.SetManagedFields(nil)
	base.SetDeletionTimestamp(nil)
	base.SetDeletionGracePeriodSeconds(nil)
	byteAt := func(i int) byte {
		if i < len(ops) {
			return ops[i]
		}
		return 0
	}
	c.User = pick(fzUsers, byteAt(0))
	opByte := byteAt(1)
	c.Op = pick([]admissionv1.Operation{admissionv1.Create, admissionv1.Update, admissionv1.Update, admissionv1.Delete}, opByte)
	if opByte%4 == 2 {
		c.Sub = "status"
	}
	c.DryRun = opByte&0x10 != 0
	onOld := int(byteAt(2) % 4)
	old := base
	var changes [][2]byte
	for i := 3; i+1 < len(ops) && len(changes) < fzMaxChanges; i += 2 {
		changes = append(changes, [2]byte{ops[i], ops[i+1]})
	}
	for i, ch := range changes {
		if i < onOld {
			pick(k.mutators, ch[0]).set(old, ch[1])
		}
	}
	obj := old.DeepCopyObject().(T)
	for i, ch := range changes {
		if i >= onOld {
			pick(k.mutators, ch[0]).set(obj, ch[1])
		}
	}
	// An update names the stored object: its name and namespace cannot change.
	obj.SetName(old.GetName())
	obj.SetNamespace(old.GetNamespace())
	switch c.Op {
	case admissionv1.Create:
		c.Obj = obj
	case admissionv1.Delete:
		c.Old = obj
	default:
		c.Old, c.Obj = old, obj
	}
	return c, true
}

// fzRun decodes one input, admits it twice, and checks the properties.
func fzRun[T client.Object](t *testing.T, k *fzKind[T], check func(*testing.T, fzCase[T], fzVerdict[T]), object, ops []byte) {
	c, ok := fzDecode(k, object, ops)
	if !ok {
		return
	}
	v := k.admit(t, c)
	if again := k.admit(t, c); mustJSON(t, again) != mustJSON(t, v) {
		t.Fatalf("not deterministic: the same request got\n%s\nand then\n%s", mustJSON(t, v), mustJSON(t, again))
	}
	if os.Getenv("ROSTER_FUZZ_LOG") != "" {
		t.Logf("%s %s as %s: stage %q %s", c.Op, c.Sub, c.User.Name, v.Stage, v.Err)
	}
	if v.Stage == "mutate" || v.Stage == "validate" {
		if v.Code == 0 || v.Code >= 500 {
			t.Fatalf("%s %s as %q refused with code %d (an API status error below 500 was expected): %s", c.Op, c.Sub, c.User.Name, v.Code, v.Err)
		}
	}
	if v.allowed() {
		check(t, c, v)
	}
	k.defaultsIdempotent(t, c)
}

func fzFail[T client.Object](t *testing.T, c fzCase[T], v fzVerdict[T], format string, args ...any) {
	t.Helper()
	t.Fatalf("%s%s by %q admitted, but %s\nold: %s\nnew: %s", c.Op, map[bool]string{true: "/status"}[c.Sub != ""], c.User.Name,
		fmt.Sprintf(format, args...), mustJSON(t, v.Old), mustJSON(t, v.Obj))
}

// checkOwners: the owner references decide what the garbage collector deletes (an object
// whose owners are all gone is deleted with them), so only Roster and the cluster's own
// controllers change them; the portal only drops the invitation's at sign-up.
func checkOwners[T client.Object](t *testing.T, c fzCase[T], v fzVerdict[T]) {
	t.Helper()
	u := c.User
	if c.Op != admissionv1.Update || u.trusted() || u.system() {
		return
	}
	old, obj := v.Old.GetOwnerReferences(), v.Obj.GetOwnerReferences()
	for _, ref := range obj {
		if !slices.ContainsFunc(old, func(o metav1.OwnerReference) bool { return reflect.DeepEqual(o, ref) }) {
			fzFail(t, c, v, "an owner reference was added or changed: the garbage collector would delete the object with it")
		}
	}
	if len(obj) < len(old) && !(u.portal() && c.Op == admissionv1.Update && v.Obj.GetObjectKind().GroupVersionKind().Kind == "Member") {
		fzFail(t, c, v, "an owner reference was removed")
	}
}

func labelChanged(old, obj client.Object, key string) bool {
	return old.GetLabels()[key] != obj.GetLabels()[key]
}

func checkMember(t *testing.T, c fzCase[*rosterv1.Member], v fzVerdict[*rosterv1.Member]) {
	checkOwners(t, c, v)
	u := c.User
	switch {
	case c.Op == admissionv1.Delete:
		m := v.Old
		st := fzRole(u, m.Namespace, m.Spec.OrganizationRef.Name)
		if !u.trusted() && !u.system() && st.exists && (!membership.IsAdmin(st.role) || membership.Outranks(roleOrMember(m.Spec.Role), st.role)) {
			fzFail(t, c, v, "only admins delete members, in roles up to their own (%s has %q)", u.Name, st.role)
		}
	case c.Op == admissionv1.Create:
		m := v.Obj
		st := fzRole(u, m.Namespace, m.Spec.OrganizationRef.Name)
		p := m.Spec.Provenance
		switch {
		case u.trusted():
		case u.portal():
			if roleOrMember(m.Spec.Role) != rosterv1.RoleMember || m.Spec.Approval != "" || m.Spec.Access != rosterv1.AccessActive ||
				(p.JoinMethod != rosterv1.JoinMethodPublicLink && p.JoinMethod != rosterv1.JoinMethodDoorNumber) ||
				p.InvitedBy != "" || p.InviterRole != "" || p.ApprovalBy != "" || m.Spec.Username == "" || !st.exists || st.deleting {
				fzFail(t, c, v, "the portal creates only undecided ordinary members who joined an organization that exists and stays by link or door number")
			}
		default:
			if !membership.IsAdmin(st.role) || st.deleting || membership.Outranks(roleOrMember(m.Spec.Role), st.role) {
				fzFail(t, c, v, "only admins add members, in roles up to their own, to an organization that stays (%s has %q)", u.Name, st.role)
			}
			want := rosterv1.MemberProvenance{InvitedBy: u.Name, InviterRole: st.role}
			if m.Spec.Approval != "" {
				want.ApprovalBy = u.Name
			}
			if p != want {
				fzFail(t, c, v, "the provenance is not the requester's: %+v, want %+v", p, want)
			}
		}
	case c.Sub == "status":
		o, n := v.Old.Status, v.Obj.Status
		o.LastLoginAt, n.LastLoginAt = nil, nil
		if !u.trusted() && !(u.portal() && reflect.DeepEqual(o, n)) {
			fzFail(t, c, v, "only Roster writes a member's status (the portal lastLoginAt)")
		}
	default:
		old, m := v.Old, v.Obj
		st := fzRole(u, m.Namespace, m.Spec.OrganizationRef.Name)
		signedUp := old.Spec.Username != ""
		personal := old.Spec.DisplayName != m.Spec.DisplayName || old.Spec.Email != m.Spec.Email || old.Spec.Phone != m.Spec.Phone
		if signedUp && personal && !u.portal() && (u.trusted() || u.Name != old.Spec.Username) {
			fzFail(t, c, v, "a signed-up person's name, email and phone are theirs alone")
		}
		if old.Spec.Username != m.Spec.Username && (signedUp || !u.portal()) {
			fzFail(t, c, v, "a username is set once, by the portal at sign-up")
		}
		if old.Spec.OrganizationRef != m.Spec.OrganizationRef {
			fzFail(t, c, v, "a member moved to another organization")
		}
		if u.trusted() {
			return
		}
		po, pn := old.Spec.Provenance, m.Spec.Provenance
		if po.JoinMethod != pn.JoinMethod || po.InvitedBy != pn.InvitedBy || po.InviterRole != pn.InviterRole {
			fzFail(t, c, v, "the provenance changed")
		}
		approval := old.Spec.Approval != m.Spec.Approval
		if (!approval && po.ApprovalBy != pn.ApprovalBy) || (approval && pn.ApprovalBy != u.Name) {
			fzFail(t, c, v, "provenance.approvalBy is not who last changed the approval")
		}
		if labelChanged(old, m, rosterv1.LabelShard) {
			fzFail(t, c, v, "the shard label changed")
		}
		adminish := approval || old.Spec.Access != m.Spec.Access || roleOrMember(old.Spec.Role) != roleOrMember(m.Spec.Role) ||
			old.Spec.WorkDetails != m.Spec.WorkDetails || (!signedUp && personal)
		signUp := u.portal() && !signedUp && m.Spec.Username != ""
		if u.portal() || !membership.IsAdmin(st.role) {
			if approval || old.Spec.Access != m.Spec.Access || roleOrMember(old.Spec.Role) != roleOrMember(m.Spec.Role) {
				fzFail(t, c, v, "a non-admin changed approval, access or role (%s has %q)", u.Name, st.role)
			}
			if (old.Spec.WorkDetails != m.Spec.WorkDetails || (!signedUp && personal)) && !signUp {
				fzFail(t, c, v, "a non-admin changed work details, or where an invitation link goes")
			}
			return
		}
		if adminish && (membership.Outranks(roleOrMember(old.Spec.Role), st.role) || membership.Outranks(roleOrMember(m.Spec.Role), st.role)) {
			fzFail(t, c, v, "an admin acted above their own role %q", st.role)
		}
	}
}

func checkInvitation(t *testing.T, c fzCase[*rosterv1.Invitation], v fzVerdict[*rosterv1.Invitation]) {
	checkOwners(t, c, v)
	u := c.User
	switch {
	case c.Op == admissionv1.Delete:
		inv := v.Old
		st := fzRole(u, inv.Namespace, inv.Spec.OrganizationRef.Name)
		cancels := inv.Spec.InvitedBy == u.Name && inv.Status.Phase != rosterv1.InvitationAccepted
		if !u.trusted() && !u.system() && !cancels && st.exists && !membership.IsAdmin(st.role) {
			fzFail(t, c, v, "only admins delete invitations, and inviters cancel their own")
		}
	case c.Op == admissionv1.Create:
		inv := v.Obj
		st := fzRole(u, inv.Namespace, inv.Spec.OrganizationRef.Name)
		if !st.exists || st.deleting || st.role == "" || membership.Outranks(roleOrMember(inv.Spec.Role), st.role) {
			fzFail(t, c, v, "only members invite, up to their own role, into an organization that exists and stays (%s has %q)", u.Name, st.role)
		}
		if inv.Spec.InvitedBy != u.Name || inv.Spec.InviterRole != st.role {
			fzFail(t, c, v, "the invitation does not record its inviter: %q as %q", inv.Spec.InvitedBy, inv.Spec.InviterRole)
		}
	case c.Sub == "status":
		if !u.trusted() {
			fzFail(t, c, v, "only Roster writes an invitation's status")
		}
	default:
		old, inv := v.Old, v.Obj
		if old.Spec.InvitedBy != inv.Spec.InvitedBy || old.Spec.InviterRole != inv.Spec.InviterRole {
			fzFail(t, c, v, "the recorded inviter changed")
		}
		if roleOrMember(old.Spec.Role) != roleOrMember(inv.Spec.Role) {
			fzFail(t, c, v, "an invitation's role changed")
		}
		if u.trusted() {
			return
		}
		if labelChanged(old, inv, rosterv1.LabelShard) {
			fzFail(t, c, v, "the shard label changed")
		}
		st := fzRole(u, inv.Namespace, old.Spec.OrganizationRef.Name)
		if !reflect.DeepEqual(old.Spec, inv.Spec) && u.Name != old.Spec.InvitedBy && st.exists && !membership.IsAdmin(st.role) {
			fzFail(t, c, v, "only admins and the inviter change an invitation")
		}
	}
}

// fzApps are the world's applications: whether each lets people register themselves, has an
// active license, and requires a team.
type fzApp struct{ selfRegistration, licensed, requireTeam bool }

func fzApplication(org, app string) (fzApp, bool) {
	apps := map[string]map[string]fzApp{
		"acme":   {"support-portal": {true, true, true}, "wiki": {true, true, false}, "legacy": {true, false, false}},
		"doomed": {"wiki": {true, true, false}},
	}
	a, ok := apps[org][app]
	return a, ok
}

// fzActive are acme's active members, who may be on a team.
var fzActive = map[string]bool{"dana": true, "adam": true, "mia": true}

func checkExternalUser(t *testing.T, c fzCase[*rosterv1.ExternalUser], v fzVerdict[*rosterv1.ExternalUser]) {
	checkOwners(t, c, v)
	u := c.User
	teamOK := func(x, old *rosterv1.ExternalUser) bool {
		leads := 0
		for _, m := range x.Spec.Team {
			if m.Lead {
				leads++
			}
			known := old != nil && slices.ContainsFunc(old.Spec.Team, func(o rosterv1.TeamMember) bool { return o.Member == m.Member })
			if !known && (!fzActive[m.Member] || x.Spec.OrganizationRef.Name != "acme") {
				return false
			}
		}
		return leads <= 1
	}
	switch {
	case c.Op == admissionv1.Delete:
		st := fzRole(u, v.Old.Namespace, v.Old.Spec.OrganizationRef.Name)
		if !u.trusted() && !u.system() && st.exists && !membership.IsAdmin(st.role) {
			fzFail(t, c, v, "only admins delete external users")
		}
	case c.Op == admissionv1.Create:
		x := v.Obj
		st := fzRole(u, x.Namespace, x.Spec.OrganizationRef.Name)
		app, found := fzApplication(x.Spec.OrganizationRef.Name, x.Spec.Application)
		_, seat := x.Labels[rosterv1.LabelSeat]
		switch {
		case u.trusted():
		case u.portal():
			plain := x.Spec.Approval == "" && len(x.Spec.Team) == 0 && x.Spec.Invitation == (rosterv1.ExternalUserInvitation{}) &&
				x.Spec.ResendConfirmationRequests == 0 && x.Spec.ResendWelcomeRequests == 0 && x.Spec.ReactivateRequests == 0 &&
				x.Spec.Access == rosterv1.ExternalAccessEnabled
			if !found || !app.selfRegistration || !app.licensed || x.Labels[rosterv1.LabelSeat] != "" || !plain || st.deleting {
				fzFail(t, c, v, "the portal registers only plain external users, where the application allows it")
			}
		default:
			if !membership.IsAdmin(st.role) || st.deleting || seat || !found || !app.licensed || (app.requireTeam && len(x.Spec.Team) == 0) || !teamOK(x, nil) {
				fzFail(t, c, v, "only admins add external users, to a licensed application, with a team of active members (%s has %q)", u.Name, st.role)
			}
		}
	case c.Sub == "status":
		o, n := v.Old.Status, v.Obj.Status
		o.SelfRegistered, n.SelfRegistered = false, false
		o.EmailVerified, n.EmailVerified = false, false
		o.RegisteredAt, n.RegisteredAt = nil, nil
		o.LastLoginAt, n.LastLoginAt = nil, nil
		if !u.trusted() && !(u.portal() && reflect.DeepEqual(o, n)) {
			fzFail(t, c, v, "only Roster writes an external user's status (the portal registration and sign-in)")
		}
	default:
		old, x := v.Old, v.Obj
		if u.trusted() {
			return
		}
		if labelChanged(old, x, rosterv1.LabelSeat) || labelChanged(old, x, rosterv1.LabelShard) {
			fzFail(t, c, v, "the seat or shard label changed")
		}
		if u.portal() {
			o, n := old.Spec, x.Spec
			o.DisplayName, n.DisplayName, o.Email, n.Email, o.Phone, n.Phone = "", "", "", "", "", ""
			if !reflect.DeepEqual(o, n) || !maps.Equal(old.Labels, x.Labels) || !maps.Equal(old.Annotations, x.Annotations) ||
				!slices.Equal(old.Finalizers, x.Finalizers) || !reflect.DeepEqual(old.OwnerReferences, x.OwnerReferences) {
				fzFail(t, c, v, "the portal changes only a person's name, email and phone")
			}
			return
		}
		st := fzRole(u, x.Namespace, x.Spec.OrganizationRef.Name)
		if !reflect.DeepEqual(old.Spec, x.Spec) && (!st.exists || !membership.IsAdmin(st.role) || !teamOK(x, old)) {
			fzFail(t, c, v, "only admins change external users, with a team of active members (%s has %q)", u.Name, st.role)
		}
	}
}

func checkCollaboration(t *testing.T, c fzCase[*rosterv1.Collaboration], v fzVerdict[*rosterv1.Collaboration]) {
	checkOwners(t, c, v)
	u := c.User
	if u.trusted() {
		return
	}
	switch {
	case c.Op == admissionv1.Delete:
		st := fzRole(u, v.Old.Namespace, v.Old.Spec.OrganizationRef.Name)
		if !u.system() && st.exists && !membership.IsAdmin(st.role) {
			fzFail(t, c, v, "only admins remove collaborators")
		}
	case c.Op == admissionv1.Create:
		st := fzRole(u, v.Obj.Namespace, v.Obj.Spec.OrganizationRef.Name)
		if !st.exists || st.deleting || !membership.IsAdmin(st.role) {
			fzFail(t, c, v, "only admins bring collaborators in, into an organization that exists and stays")
		}
	case c.Sub == "status":
		fzFail(t, c, v, "only Roster writes a collaboration's status")
	default:
		st := fzRole(u, v.Obj.Namespace, v.Obj.Spec.OrganizationRef.Name)
		if labelChanged(v.Old, v.Obj, rosterv1.LabelShard) {
			fzFail(t, c, v, "the shard label changed")
		}
		if !reflect.DeepEqual(v.Old.Spec, v.Obj.Spec) && (!st.exists || !membership.IsAdmin(st.role)) {
			fzFail(t, c, v, "only admins change collaborations")
		}
	}
}

// fzOrgAdmin reports whether spec.admins names the user or one of their groups, written out
// apart from membership.IsOrganizationAdmin.
func fzOrgAdmin(o *rosterv1.Organization, u fzUser) bool {
	for _, s := range o.Spec.Admins {
		if s.Kind == "User" && s.Name == u.Name || s.Kind == "Group" && slices.Contains(u.Groups, s.Name) {
			return true
		}
	}
	return false
}

func checkOrganization(t *testing.T, c fzCase[*rosterv1.Organization], v fzVerdict[*rosterv1.Organization]) {
	checkOwners(t, c, v)
	u := c.User
	doorTaken := func(o *rosterv1.Organization) bool {
		return o.Spec.DoorNumber == fzDoor && !(o.Namespace == fzNS && o.Name == "acme")
	}
	switch {
	case c.Op == admissionv1.Create:
		if doorTaken(v.Obj) {
			fzFail(t, c, v, "the door number is acme's")
		}
	case u.trusted():
	case c.Op == admissionv1.Delete:
		o := v.Old
		if !u.system() && len(o.Spec.Admins) > 0 && !fzOrgAdmin(o, u) && fzRole(u, o.Namespace, o.Name).role != rosterv1.RoleSuperAdmin {
			fzFail(t, c, v, "only Super Admins delete an organization")
		}
	case c.Sub == "status":
		fzFail(t, c, v, "only Roster writes an organization's status")
	default:
		old, o := v.Old, v.Obj
		if len(old.Spec.Admins) > 0 && !reflect.DeepEqual(old.Spec, o.Spec) {
			role := fzRole(u, o.Namespace, o.Name).role
			if fzOrgAdmin(old, u) {
				role = rosterv1.RoleSuperAdmin
			}
			if !membership.IsAdmin(role) {
				fzFail(t, c, v, "only admins change an organization's spec (%s has %q)", u.Name, role)
			}
			if !reflect.DeepEqual(old.Spec.Admins, o.Spec.Admins) && role != rosterv1.RoleSuperAdmin {
				fzFail(t, c, v, "only Super Admins change spec.admins (%s has %q)", u.Name, role)
			}
		}
		if old.Spec.DoorNumber != o.Spec.DoorNumber && doorTaken(o) {
			fzFail(t, c, v, "the door number is acme's")
		}
	}
}

// Seeds: the samples, the objects the other tests use, and operations that walk the paths
// the properties are about.

// fzOp builds an operation string: who, what (0 create, 1 update, 2 status, 3 delete), how
// many changes go to the stored object, then (field name, value) pairs.
func fzOp[T client.Object](k *fzKind[T], user, op, onOld int, changes ...any) []byte {
	out := []byte{byte(user), byte(op), byte(onOld)}
	for i := 0; i+1 < len(changes); i += 2 {
		name := changes[i].(string)
		idx := slices.IndexFunc(k.mutators, func(m fzMutator[T]) bool { return m.name == name })
		if idx < 0 {
			panic("no mutator " + name)
		}
		out = append(out, byte(idx), byte(changes[i+1].(int)))
	}
	return out
}

// fzSeed adds every object with every operation.
func fzSeed[T client.Object](f *testing.F, k *fzKind[T], samples []string, extra []string, ops [][]byte) {
	var objects [][]byte
	for _, s := range samples {
		docs, err := sampleDocs(s)
		if err != nil {
			f.Fatal(err)
		}
		objects = append(objects, docs...)
	}
	for _, e := range extra {
		objects = append(objects, []byte(e))
	}
	k.bases = objects
	for _, o := range objects {
		for _, op := range ops {
			f.Add(o, op)
		}
	}
}

// Users by index in fzUsers.
const (
	uAlice = iota
	uGina
	uDana
	uAdam
	uMia
	uPete
	uTess
	uOscar
	uPortal
	uManager
	uGC
	uNobody
)

func FuzzMemberAdmission(f *testing.F) {
	k := memberKind
	fzSeed(f, k, []string{"org_v1alpha1_member.yaml"}, []string{
		// The cost test's and the fault tests' members: signed up, and invited but not yet.
		`{"metadata":{"name":"m-1"},"spec":{"organizationRef":{"name":"acme"},"username":"user-1","email":"user-1@acme.example","phone":"+491510000001"}}`,
		`{"metadata":{"name":"bob","labels":{"org.roster.dev/invitation":"bob"},"ownerReferences":[{"apiVersion":"org.roster.dev/v1alpha1","kind":"Invitation","name":"bob","uid":"uid-bob","controller":true}]},` +
			`"spec":{"organizationRef":{"name":"acme"},"displayName":"Bob Builder","email":"bob@acme.example","role":"Member","access":"Active",` +
			`"provenance":{"joinMethod":"Invitation","invitedBy":"alice@acme.example","inviterRole":"SuperAdmin"}},"status":{"phase":"Inactivated"}}`,
		`{"metadata":{"name":"ned"},"spec":{"organizationRef":{"name":"acme"},"username":"ned","displayName":"Ned","email":"ned@mail.example","role":"Member",` +
			`"provenance":{"joinMethod":"PublicLink"}},"status":{"phase":"Pending","usernameClaimed":true}}`,
	}, [][]byte{
		fzOp(k, uMia, 1, 0, "approval", 1),                               // a member approves
		fzOp(k, uMia, 1, 0, "role", 4),                                   // a member makes someone Super Admin
		fzOp(k, uAdam, 1, 0, "role", 4),                                  // an Admin grants above their role
		fzOp(k, uAdam, 1, 0, "approval", 2),                              // an Admin rejects
		fzOp(k, uAdam, 1, 0, "displayName", 14),                          // an admin renames a signed-up person
		fzOp(k, uDana, 1, 0, "email", 12),                                // ... or changes their email
		fzOp(k, uPortal, 1, 1, "username", 0, "username", 5),             // the portal signs someone up
		fzOp(k, uPortal, 1, 0, "role", 3),                                // the portal grants a role
		fzOp(k, uPortal, 2, 0, "phase", 3),                               // the portal writes status
		fzOp(k, uPortal, 2, 0, "lastLoginAt", 1),                         // the portal records a sign-in
		fzOp(k, uManager, 1, 0, "email", 12),                             // the manager changes a person's email
		fzOp(k, uManager, 1, 1, "username", 0, "username", 5),            // the manager signs someone up
		fzOp(k, uMia, 1, 0, "shard", 2),                                  // someone moves a member to another shard
		fzOp(k, uMia, 1, 0, "invitedBy", 4, "inviterRole", 4),            // someone rewrites the provenance
		fzOp(k, uAlice, 0, 0, "joinMethod", 2, "approval", 1),            // an admin adds someone, claiming the public link
		fzOp(k, uPortal, 0, 0, "joinMethod", 2, "username", 5),           // the portal's join
		fzOp(k, uMia, 0, 0),                                              // a member adds someone directly
		fzOp(k, uMia, 3, 0),                                              // a member deletes someone
		fzOp(k, uAdam, 3, 0, "role", 4),                                  // an Admin deletes a Super Admin
		fzOp(k, uGC, 3, 0),                                               // the garbage collector cleans up
		fzOp(k, uMia, 2, 0, "phase", 3, "usernameClaimed", 1),            // a member activates themselves
		fzOp(k, uTess, 1, 0, "access", 1),                                // a removed admin restores themselves
		fzOp(k, uAlice, 1, 1, "access", 2, "access", 1),                  // a Super Admin restores someone
		fzOp(k, uMia, 1, 0, "owner", 1),                                  // a member gives someone's Member an owner
		fzOp(k, uMia, 1, 1, "owner", 1, "owner", 0),                      // ... or takes it away
		fzOp(k, uAlice, 0, 0, "org", 1),                                  // an admin adds someone to an organization being deleted
		fzOp(k, uPortal, 0, 0, "joinMethod", 2, "username", 5, "org", 1), // the portal's join into it
	})
	f.Fuzz(func(t *testing.T, object, ops []byte) { fzRun(t, k, checkMember, object, ops) })
}

func FuzzInvitationAdmission(f *testing.F) {
	k := invitationKind
	fzSeed(f, k, []string{"org_v1alpha1_invitation.yaml"}, []string{
		// The cost test's invitation, and one a member sent.
		`{"metadata":{"name":"new"},"spec":{"organizationRef":{"name":"acme"},"method":"Email","invitee":{"name":"New","email":"new@acme.example","phone":"+4915199999999"}}}`,
		`{"metadata":{"name":"sent"},"spec":{"organizationRef":{"name":"acme"},"method":"Link","invitee":{"name":"Sam"},"role":"Member","invitedBy":"mia","inviterRole":"Member"},` +
			`"status":{"phase":"Sent","memberRef":{"name":"sent"}}}`,
	}, [][]byte{
		fzOp(k, uMia, 0, 0),                                   // a member invites
		fzOp(k, uMia, 0, 0, "role", 2),                        // a member invites an Admin
		fzOp(k, uAdam, 0, 0, "role", 4),                       // an Admin invites a Super Admin
		fzOp(k, uOscar, 0, 0),                                 // a stranger invites
		fzOp(k, uMia, 0, 0, "invitedBy", 1, "inviterRole", 4), // a member forges the inviter
		fzOp(k, uAlice, 0, 0, "org", 1),                       // into an organization being deleted
		fzOp(k, uMia, 1, 0, "invitedBy", 5),                   // someone takes an invitation over
		fzOp(k, uMia, 1, 1, "invitedBy", 5, "role", 4),        // the inviter raises the role
		fzOp(k, uMia, 1, 1, "invitedBy", 5, "department", 3),  // the inviter edits
		fzOp(k, uOscar, 1, 0, "resendRequests", 1),            // a stranger resends
		fzOp(k, uMia, 2, 0, "phase", 2),                       // someone marks it Sent
		fzOp(k, uMia, 1, 0, "shard", 3),                       // someone moves it to another shard
		fzOp(k, uMia, 3, 1, "invitedBy", 5, "phase", 3),       // the inviter deletes an accepted one
		fzOp(k, uMia, 3, 1, "invitedBy", 5),                   // the inviter cancels
		fzOp(k, uOscar, 3, 0),                                 // a stranger deletes
		fzOp(k, uManager, 1, 0, "inviterRole", 4),             // the manager rewrites the inviter's role
		fzOp(k, uOscar, 1, 0, "owner", 1),                     // a stranger gives an invitation an owner
	})
	f.Fuzz(func(t *testing.T, object, ops []byte) { fzRun(t, k, checkInvitation, object, ops) })
}

func FuzzExternalUserAdmission(f *testing.F) {
	k := externalUserKind
	fzSeed(f, k, []string{"org_v1alpha1_externaluser.yaml"}, []string{
		// A self-registration as the portal makes it.
		`{"metadata":{"name":"reg"},"spec":{"organizationRef":{"name":"acme"},"application":"wiki","displayName":"Rita","email":"rita@partner.example","access":"Enabled"},` +
			`"status":{"selfRegistered":true}}`,
	}, [][]byte{
		fzOp(k, uAlice, 0, 0),                                         // an admin adds one
		fzOp(k, uMia, 0, 0),                                           // a member adds one
		fzOp(k, uAlice, 0, 0, "application", 2),                       // to an expired license
		fzOp(k, uAlice, 0, 0, "team", 4),                              // with a stranger on the team
		fzOp(k, uAlice, 0, 0, "seat", 1),                              // with a seat
		fzOp(k, uPortal, 0, 0, "application", 1, "team", 0),           // the portal registers someone
		fzOp(k, uPortal, 0, 0, "application", 1, "approval", 1),       // ... approved
		fzOp(k, uPortal, 1, 0, "email", 12),                           // the portal changes an email
		fzOp(k, uPortal, 1, 0, "approval", 1),                         // the portal approves
		fzOp(k, uPortal, 2, 0, "emailVerified", 1),                    // the portal verifies an email
		fzOp(k, uPortal, 2, 0, "phase", 3),                            // the portal activates
		fzOp(k, uMia, 1, 0, "access", 2),                              // a member locks someone out
		fzOp(k, uAdam, 1, 0, "team", 2),                               // an admin drops the lead
		fzOp(k, uAdam, 1, 0, "seat", 1),                               // an admin takes a seat
		fzOp(k, uMia, 3, 0),                                           // a member deletes one
		fzOp(k, uMia, 1, 0, "owner", 1),                               // a member gives one an owner
		fzOp(k, uPortal, 0, 0, "application", 1, "team", 0, "org", 1), // the portal registers someone into an organization being deleted
	})
	f.Fuzz(func(t *testing.T, object, ops []byte) { fzRun(t, k, checkExternalUser, object, ops) })
}

func FuzzCollaborationAdmission(f *testing.F) {
	k := collaborationKind
	fzSeed(f, k, []string{"org_v1alpha1_collaboration.yaml"}, nil, [][]byte{
		fzOp(k, uAlice, 0, 0),
		fzOp(k, uMia, 0, 0),
		fzOp(k, uAlice, 0, 0, "org", 1),
		fzOp(k, uMia, 1, 0, "modules", 1),
		fzOp(k, uAdam, 1, 0, "modules", 2),
		fzOp(k, uMia, 2, 0, "phase", 2),
		fzOp(k, uMia, 1, 0, "shard", 2),
		fzOp(k, uMia, 3, 0),
		fzOp(k, uGC, 3, 0),
		fzOp(k, uMia, 1, 0, "owner", 1),
	})
	f.Fuzz(func(t *testing.T, object, ops []byte) { fzRun(t, k, checkCollaboration, object, ops) })
}

func FuzzOrganizationAdmission(f *testing.F) {
	k := organizationKind
	fzSeed(f, k, []string{"org_v1alpha1_organization.yaml"}, []string{
		// The fault tests' organization, and one with no admins yet.
		`{"metadata":{"name":"acme"},"spec":{"displayName":"Acme","admins":[{"kind":"User","name":"alice@acme.example"}],"plan":"Paid",` +
			`"notifications":{"email":{"smtpSecretRef":{"name":"smtp"},"from":"Acme <people@acme.example>"}}}}`,
		`{"metadata":{"name":"initech"},"spec":{"displayName":"Initech"}}`,
	}, [][]byte{
		fzOp(k, uOscar, 0, 0),
		fzOp(k, uOscar, 0, 0, "orgName", 3, "door", 1),  // someone takes acme's door number
		fzOp(k, uMia, 1, 0, "plan", 2),                  // a member upgrades the plan
		fzOp(k, uAdam, 1, 0, "admins", 2),               // an Admin makes a member Super Admin
		fzOp(k, uAdam, 1, 0, "portalURL", 2),            // an Admin moves the portal
		fzOp(k, uGina, 1, 0, "admins", 4),               // a Super Admin by group adds an admin
		fzOp(k, uMia, 1, 0, "admins", 2),                // a member names themselves admin
		fzOp(k, uOscar, 1, 1, "admins", 0, "admins", 4), // someone gives an organization its first admins
		fzOp(k, uMia, 2, 0, "statusDoor", 2),            // someone writes status
		fzOp(k, uAdam, 3, 0),                            // an Admin deletes the organization
		fzOp(k, uAlice, 3, 0),                           // a Super Admin deletes it
		fzOp(k, uMia, 1, 0, "door", 2),                  // a member changes the door number
		fzOp(k, uMia, 1, 0, "owner", 1),                 // a member gives the organization an owner
	})
	f.Fuzz(func(t *testing.T, object, ops []byte) { fzRun(t, k, checkOrganization, object, ops) })
}
