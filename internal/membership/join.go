package membership

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
)

// labelOrganization is the label on a public link Secret naming its Organization.
const labelOrganization = rosterv1.LabelOrganization

// OrganizationForPublicLink finds the organization whose current public link carries token.
func (a *Acceptor) OrganizationForPublicLink(ctx context.Context, token string) (*rosterv1.Organization, error) {
	if !linktoken.Valid(token) {
		return nil, ErrInvalidLink
	}
	sec, err := a.secretFor(ctx, token, labelOrganization)
	if err != nil {
		return nil, err
	}
	org := &rosterv1.Organization{}
	if err := a.Client.Get(ctx, client.ObjectKey{Namespace: sec.Namespace, Name: sec.Labels[labelOrganization]}, org); err != nil {
		return nil, notFoundAs(err, ErrInvalidLink)
	}
	if !metav1.IsControlledBy(sec, org) {
		return nil, ErrInvalidLink
	}
	return org, nil
}

// ErrNoDoorNumber: no organization has the door number.
var ErrNoDoorNumber = errors.New("no organization has this door number; check it with the person who gave it to you")

// OrganizationForDoorNumber finds the organization with a door number through its claim:
// one read, however many organizations there are.
func (a *Acceptor) OrganizationForDoorNumber(ctx context.Context, door string) (*rosterv1.Organization, error) {
	if door == "" {
		return nil, ErrNoDoorNumber
	}
	holder, err := a.claims().Holder(ctx, DoorNumberClaimName(door))
	if err != nil {
		return nil, err
	}
	if holder == nil {
		return nil, ErrNoDoorNumber
	}
	org := &rosterv1.Organization{}
	if err := a.Client.Get(ctx, client.ObjectKey{Namespace: holder.Namespace, Name: holder.Name}, org); err != nil {
		return nil, notFoundAs(err, ErrNoDoorNumber)
	}
	if org.Status.DoorNumber != door {
		return nil, ErrNoDoorNumber
	}
	return org, nil
}

// Join asks to join org through its public link or door number (F1): it makes the person's
// Member, which waits for an admin's approval whoever shared the link (F9).
func (a *Acceptor) Join(ctx context.Context, org *rosterv1.Organization, how rosterv1.JoinMethod, s SignUp) (*rosterv1.Member, error) {
	if !org.Spec.PublicInvitation.Enabled {
		return nil, ErrJoinClosed
	}
	m := &rosterv1.Member{
		ObjectMeta: metav1.ObjectMeta{Namespace: org.Namespace},
		Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: org.Name}, Access: rosterv1.AccessActive,
			Role: rosterv1.RoleMember, Provenance: rosterv1.MemberProvenance{JoinMethod: how}},
	}
	merge(&m.Spec, s)
	m.Name = memberName(org, m.Spec.Username)
	if err := a.checkSignUp(ctx, org, m); err != nil {
		return nil, err
	}
	if err := a.Client.Create(ctx, m); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, ErrUsernameTaken
		}
		return nil, fmt.Errorf("join: %w", err)
	}
	return m, nil
}

// memberName is a joiner's Member name: their username where it is a valid name, so that a
// second request to join finds the first.
func memberName(org *rosterv1.Organization, username string) string {
	if len(validation.IsDNS1123Subdomain(username)) == 0 && len(username) <= 200 {
		return username
	}
	return fmt.Sprintf("%s-%s", org.Name, linktoken.Hash(username)[:12])
}
