package membership

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
)

// Errors the sign-up pages show. They say what happened without telling a stranger whether
// a token ever existed.
var (
	// ErrInvalidLink: the link was used, replaced by a newer one, cancelled or never existed.
	ErrInvalidLink = errors.New("this invitation link is not valid any more: it was already used, replaced by a newer one, or cancelled")
	// ErrExpired: the link ran out; the inviter can send a new one.
	ErrExpired = errors.New("this invitation link has expired; ask the person who invited you to send it again")
	// ErrUsernameTaken: someone in the organization already has the username.
	ErrUsernameTaken = errors.New("this username is already taken in the organization; choose another")
	// ErrJoinClosed: the organization's public link and door number are off.
	ErrJoinClosed = errors.New("this organization does not accept requests to join at the moment")
)

// MissingFieldsError lists the details the organization requires and the joiner left out (F10).
type MissingFieldsError struct{ Fields []rosterv1.MemberField }

func (e *MissingFieldsError) Error() string {
	names := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		names[i] = string(f)
	}
	return "please fill in: " + strings.Join(names, ", ")
}

// SignUp is what a person gives on the sign-up page.
type SignUp struct {
	Username    string
	DisplayName string
	Email       string
	Phone       string
	rosterv1.WorkDetails
}

// Invite is what a valid invitation link leads to.
type Invite struct {
	Invitation   *rosterv1.Invitation
	Organization *rosterv1.Organization
	Member       *rosterv1.Member
}

// Acceptor accepts invitation links on behalf of the sign-up pages.
type Acceptor struct {
	// Client reads through the cache and writes as Roster's trusted identity.
	Client client.Client
	// APIReader reads past the cache, for username claims: a claim decision must see the API
	// server's state. Client when nil, which only a test without concurrency may do.
	APIReader client.Reader
	// Clock is the time links expire against.
	Clock clock.PassiveClock
}

// claims reserve usernames for the acceptor.
func (a *Acceptor) claims() Claims {
	r := a.APIReader
	if r == nil {
		r = a.Client
	}
	return Claims{Client: a.Client, Reader: r}
}

var usernamePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.@_]*[a-z0-9])?$`)

// Lookup finds the invitation a token opens, refusing used, replaced, expired and cancelled
// ones.
func (a *Acceptor) Lookup(ctx context.Context, token string) (*Invite, error) {
	if !linktoken.Valid(token) {
		return nil, ErrInvalidLink
	}
	sec, err := a.secretFor(ctx, token, rosterv1.LabelInvitation)
	if err != nil || sec == nil {
		return nil, err
	}
	inv := &rosterv1.Invitation{}
	if err := a.Client.Get(ctx, client.ObjectKey{Namespace: sec.Namespace, Name: sec.Labels[rosterv1.LabelInvitation]}, inv); err != nil {
		return nil, notFoundAs(err, ErrInvalidLink)
	}
	// Only the Secret the invitation names, and owns, opens it: a look-alike labelled
	// Secret that someone else made opens nothing.
	if !inv.DeletionTimestamp.IsZero() || inv.Status.MemberRef == nil || !metav1.IsControlledBy(sec, inv) ||
		inv.Status.TokenSecretRef == nil || inv.Status.TokenSecretRef.Name != sec.Name {
		return nil, ErrInvalidLink
	}
	switch {
	case inv.Status.Phase == rosterv1.InvitationExpired,
		inv.Status.ExpiresAt != nil && !a.Clock.Now().Before(inv.Status.ExpiresAt.Time):
		return nil, ErrExpired
	case inv.Status.Phase != rosterv1.InvitationSent:
		return nil, ErrInvalidLink
	}
	org := &rosterv1.Organization{}
	if err := a.Client.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: inv.Spec.OrganizationRef.Name}, org); err != nil {
		return nil, notFoundAs(err, ErrInvalidLink)
	}
	m := &rosterv1.Member{}
	if err := a.Client.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: inv.Status.MemberRef.Name}, m); err != nil {
		return nil, notFoundAs(err, ErrInvalidLink)
	}
	if m.Spec.Username != "" {
		return nil, ErrInvalidLink
	}
	return &Invite{Invitation: inv, Organization: org, Member: m}, nil
}

// Accept signs the person up with an invitation link: it checks what the organization
// requires (F10), reserves the username, writes the person's details into their Member and
// uses the link up. The Member update is the link's claim: it carries the resourceVersion
// that was read, so of two concurrent uses of one link only one wins. The same update
// releases the Member from the invitation, so deleting the invitation from now on cannot
// take the new member with it.
func (a *Acceptor) Accept(ctx context.Context, token string, s SignUp) (*rosterv1.Member, error) {
	in, err := a.Lookup(ctx, token)
	if err != nil {
		return nil, err
	}
	m := in.Member
	if in.Invitation.Spec.Method == rosterv1.InvitationMethodContact {
		s.Username = in.Invitation.Spec.Invitee.Username
	}
	merge(&m.Spec, s)
	if err := a.checkSignUp(ctx, in.Organization, m); err != nil {
		return nil, err
	}
	m.OwnerReferences = withoutOwner(m.OwnerReferences, in.Invitation.UID)
	if err := a.Client.Update(ctx, m); err != nil {
		if apierrors.IsConflict(err) {
			return nil, ErrInvalidLink
		}
		return nil, fmt.Errorf("sign up: %w", err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: in.Invitation.Status.TokenSecretRef.Name}}
	if err := a.Client.Delete(ctx, sec); client.IgnoreNotFound(err) != nil {
		// The invitation controller deletes it too once it sees the sign-up; the link is
		// used up either way because the Member now has a username.
		return m, nil
	}
	return m, nil
}

// withoutOwner drops the reference to one owner.
func withoutOwner(refs []metav1.OwnerReference, uid types.UID) []metav1.OwnerReference {
	var out []metav1.OwnerReference
	for _, r := range refs {
		if r.UID != uid {
			out = append(out, r)
		}
	}
	return out
}

// checkSignUp refuses a sign-up that lacks what the organization requires or whose username
// someone else has, and reserves the username for the member. The reservation is a Claim
// named after the username, so of two people asking for one username at once only one
// gets it.
func (a *Acceptor) checkSignUp(ctx context.Context, org *rosterv1.Organization, m *rosterv1.Member) error {
	if !usernamePattern.MatchString(m.Spec.Username) {
		return fmt.Errorf("a username of lowercase letters, digits and - . @ _ is required")
	}
	var missing []rosterv1.MemberField
	for _, f := range org.Spec.JoinRules.RequiredFields {
		if fieldValue(&m.Spec, f) == "" {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return &MissingFieldsError{Fields: missing}
	}
	list := &rosterv1.MemberList{}
	if err := a.Client.List(ctx, list, client.InNamespace(m.Namespace), client.MatchingFields{rosterv1.IndexUsername: m.Spec.Username}); err != nil {
		return err
	}
	for _, other := range list.Items {
		if other.Name != m.Name && other.Spec.OrganizationRef.Name == org.Name {
			return ErrUsernameTaken
		}
	}
	err := a.claims().TakeUsername(ctx, m, m.Spec.Username)
	var taken *ErrTaken
	if errors.As(err, &taken) {
		return ErrUsernameTaken
	}
	return err
}

// merge writes what the person gave over what the inviter prefilled; empty answers keep the
// prefilled value.
func merge(spec *rosterv1.MemberSpec, s SignUp) {
	set := func(dst *string, v string) {
		if v = strings.TrimSpace(v); v != "" {
			*dst = v
		}
	}
	set(&spec.Username, s.Username)
	set(&spec.DisplayName, s.DisplayName)
	set(&spec.Email, s.Email)
	set(&spec.Phone, s.Phone)
	set(&spec.Department, s.Department)
	set(&spec.Position, s.Position)
	set(&spec.WorkNumber, s.WorkNumber)
	set(&spec.Location, s.Location)
}

func fieldValue(spec *rosterv1.MemberSpec, f rosterv1.MemberField) string {
	switch f {
	case "department":
		return spec.Department
	case "position":
		return spec.Position
	case "workNumber":
		return spec.WorkNumber
	case "location":
		return spec.Location
	case "email":
		return spec.Email
	case "phone":
		return spec.Phone
	}
	return ""
}

// IndexTokenHash indexes Secrets in a cache by their token hash label, so that a link finds
// its Secret with one lookup however many links there are (IndexSecretsByTokenHash).
const IndexTokenHash = "tokenHash"

// IndexSecretsByTokenHash registers IndexTokenHash; the portal's cache has it.
func IndexSecretsByTokenHash(ctx context.Context, idx client.FieldIndexer) error {
	return idx.IndexField(ctx, &corev1.Secret{}, IndexTokenHash, func(o client.Object) []string {
		if v := o.GetLabels()[linktoken.HashLabel]; v != "" && o.GetLabels()[rosterv1.LabelPartOf] == rosterv1.PartOfRoster {
			return []string{v}
		}
		return nil
	})
}

// secretFor finds the Roster Secret holding token's hash that carries the label kind.
func (a *Acceptor) secretFor(ctx context.Context, token, kind string) (*corev1.Secret, error) {
	hash := linktoken.Hash(token)
	list := &corev1.SecretList{}
	// Through the index where the client is a cache that has it; a label selector on a
	// cache would look at every Secret in the cluster for each link opened.
	if err := a.Client.List(ctx, list, client.MatchingFields{IndexTokenHash: linktoken.LabelValue(hash)}); err != nil {
		// A client without the index (one that reads the API server, or a cache set up
		// without it) asks by label.
		if err := a.Client.List(ctx, list, client.MatchingLabels{
			rosterv1.LabelPartOf: rosterv1.PartOfRoster,
			linktoken.HashLabel:  linktoken.LabelValue(hash),
		}); err != nil {
			return nil, err
		}
	}
	for i := range list.Items {
		s := &list.Items[i]
		if _, ok := s.Labels[kind]; ok && linktoken.Matches(string(s.Data[linktoken.SecretKeyHash]), token) {
			return s, nil
		}
	}
	return nil, ErrInvalidLink
}

func notFoundAs(err, as error) error {
	if apierrors.IsNotFound(err) {
		return as
	}
	return err
}
