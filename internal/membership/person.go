package membership

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// SamePerson reports whether m is the person the invitation names: the same username, email
// (case-insensitive) or phone, in the same organization.
func SamePerson(s *rosterv1.InvitationSpec, m *rosterv1.Member) bool {
	if m.Spec.OrganizationRef.Name != s.OrganizationRef.Name {
		return false
	}
	i := s.Invitee
	return (i.Username != "" && i.Username == m.Spec.Username) ||
		(i.Email != "" && strings.EqualFold(i.Email, m.Spec.Email)) ||
		(i.Phone != "" && i.Phone == m.Spec.Phone)
}

// MembersLike finds the Members of the invitation's organization who are the person it
// names, through the username, email and phone indexes: a handful of objects, however large
// the organization.
func MembersLike(ctx context.Context, r client.Reader, namespace string, s *rosterv1.InvitationSpec) ([]rosterv1.Member, error) {
	var out []rosterv1.Member
	seen := map[string]bool{}
	lookups := map[string]string{
		rosterv1.IndexUsername: s.Invitee.Username,
		rosterv1.IndexEmail:    strings.ToLower(s.Invitee.Email),
		rosterv1.IndexPhone:    s.Invitee.Phone,
	}
	for index, value := range lookups {
		if value == "" {
			continue
		}
		list := &rosterv1.MemberList{}
		if err := r.List(ctx, list, client.InNamespace(namespace), client.MatchingFields{index: value}); err != nil {
			return nil, err
		}
		for _, m := range list.Items {
			if !seen[m.Name] && SamePerson(s, &m) {
				seen[m.Name] = true
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// InvitationConflict says why an invitation for the person m already is cannot go on (F7),
// with a message that tells the admin what to do instead. It returns "" when nothing stands
// in the way.
func InvitationConflict(m *rosterv1.Member) (rosterv1.InvitationFailureReason, string) {
	who := m.Spec.DisplayName
	if who == "" {
		who = firstNonEmpty(m.Spec.Email, m.Spec.Phone, m.Spec.Username, m.Name)
	}
	patch := func(field, value string) string {
		return fmt.Sprintf(`kubectl patch mem %s -n %s --type=merge -p '{"spec":{"%s":"%s"}}'`, m.Name, m.Namespace, field, value)
	}
	switch m.Status.Phase {
	case rosterv1.MemberActive:
		return rosterv1.ReasonAlreadyMember, fmt.Sprintf("%s is already a member (Member %s); there is nothing to invite", who, m.Name)
	case rosterv1.MemberPending:
		return rosterv1.ReasonAwaitingApproval, fmt.Sprintf("%s has signed up and is awaiting approval (Member %s); approve them instead: %s",
			who, m.Name, patch("approval", string(rosterv1.ApprovalApproved)))
	case rosterv1.MemberRejected:
		return rosterv1.ReasonPreviouslyRejected, fmt.Sprintf("%s was rejected before (Member %s); re-approve them instead: %s",
			who, m.Name, patch("approval", string(rosterv1.ApprovalApproved)))
	case rosterv1.MemberTerminated:
		return rosterv1.ReasonPreviouslyRemoved, fmt.Sprintf("%s was removed before (Member %s); restore them instead: %s. "+
			"If this is a different person who now has the same email or phone, restoring would show them %s's data: invite them with a different email",
			who, m.Name, patch("access", string(rosterv1.AccessActive)), who)
	case rosterv1.MemberInactivated:
		inv := m.Labels[rosterv1.LabelInvitation]
		if inv == "" {
			inv = "another invitation"
		} else {
			inv = "Invitation " + inv
		}
		return rosterv1.ReasonAlreadyInvited, fmt.Sprintf("%s is already invited by %s (Member %s); raise that invitation's spec.resendRequests to send it again",
			who, inv, m.Name)
	}
	return "", ""
}

// ConflictFor is the first reason among the Members like the invitation's person that it
// cannot go on. It skips the invitation's own Member, known by its owner reference (uid is
// the invitation's UID, empty before it is created) rather than by a label anyone can write.
func ConflictFor(ctx context.Context, r client.Reader, namespace string, uid types.UID, s *rosterv1.InvitationSpec) (rosterv1.InvitationFailureReason, string, error) {
	like, err := MembersLike(ctx, r, namespace, s)
	if err != nil {
		return "", "", err
	}
	for i := range like {
		if owner := metav1.GetControllerOf(&like[i]); uid != "" && owner != nil && owner.UID == uid {
			continue
		}
		if reason, msg := InvitationConflict(&like[i]); reason != "" {
			return reason, msg, nil
		}
	}
	return "", "", nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
