package membership

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
)

// claimGrace is how long a new claim is honoured even though its holder does not carry the
// value yet: the holder's own write follows the claim, and a second request in between must
// not mistake the claim for a stale one.
const claimGrace = time.Minute

// ErrTaken says that another object holds the value.
type ErrTaken struct{ Holder rosterv1.ClaimHolder }

func (e *ErrTaken) Error() string {
	return fmt.Sprintf("held by %s %s/%s", e.Holder.Kind, e.Holder.Namespace, e.Holder.Name)
}

// DoorNumberClaimName is the Claim that reserves a door number across the cluster.
func DoorNumberClaimName(door string) string { return "doornumber." + door }

// UsernameClaimName is the Claim that reserves a username in one organization. The name is
// a hash, so that Claim names reveal no usernames.
func UsernameClaimName(namespace, org, username string) string {
	return "username." + linktoken.Hash(namespace + "/" + org + "/" + username)[:40]
}

// Claims reserve unique values with Claim objects named after them.
type Claims struct {
	// Client creates and deletes Claims.
	Client client.Client
	// Reader reads Claims and their holders past any cache: a claim decision must see the
	// API server's state.
	Reader client.Reader
}

// Take reserves value for holder. It succeeds when holder already has it, and takes over a
// stale claim whose holder is gone or no longer carries the value. Of two concurrent takers
// the API server lets one Create win; the other gets *ErrTaken.
func (c Claims) Take(ctx context.Context, kind rosterv1.ClaimKind, name, value string, holder rosterv1.ClaimHolder) error {
	for range 3 {
		existing, stale, err := c.current(ctx, name)
		if err != nil {
			return err
		}
		switch {
		case existing != nil && existing.Spec.Holder == holder:
			return nil
		case existing != nil && !stale:
			return &ErrTaken{Holder: existing.Spec.Holder}
		case existing != nil:
			err := c.Client.Delete(ctx, existing, client.Preconditions{UID: &existing.UID, ResourceVersion: &existing.ResourceVersion})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return err
			}
		}
		claim := &rosterv1.Claim{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster}},
			Spec:       rosterv1.ClaimSpec{Kind: kind, Value: value, Holder: holder},
		}
		if err := c.Client.Create(ctx, claim); !apierrors.IsAlreadyExists(err) {
			return err
		}
		// Someone else created it in between: look at who, and decide again.
	}
	return errors.New("the claim kept changing; try again")
}

// Holder returns who holds the claim name, nil when nobody does (no claim, or a stale one).
func (c Claims) Holder(ctx context.Context, name string) (*rosterv1.ClaimHolder, error) {
	existing, stale, err := c.current(ctx, name)
	if err != nil || existing == nil || stale {
		return nil, err
	}
	return &existing.Spec.Holder, nil
}

// Release gives up holder's claim on name, if it still has it.
func (c Claims) Release(ctx context.Context, name string, holder rosterv1.ClaimHolder) error {
	existing := &rosterv1.Claim{}
	if err := c.Reader.Get(ctx, client.ObjectKey{Name: name}, existing); err != nil {
		return client.IgnoreNotFound(err)
	}
	if existing.Spec.Holder != holder {
		return nil
	}
	err := c.Client.Delete(ctx, existing, client.Preconditions{UID: &existing.UID, ResourceVersion: &existing.ResourceVersion})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// current reads a claim and reports whether it is stale.
func (c Claims) current(ctx context.Context, name string) (*rosterv1.Claim, bool, error) {
	existing := &rosterv1.Claim{}
	if err := c.Reader.Get(ctx, client.ObjectKey{Name: name}, existing); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	// The grace is measured on the wall clock against the API server's creation time, never
	// on a controller's (possibly fake) clock.
	if time.Now().Before(existing.CreationTimestamp.Add(claimGrace)) {
		return existing, false, nil
	}
	holds, err := c.stillHolds(ctx, existing)
	return existing, !holds, err
}

// stillHolds reports whether a claim's holder exists and carries the value.
func (c Claims) stillHolds(ctx context.Context, claim *rosterv1.Claim) (bool, error) {
	h := claim.Spec.Holder
	key := client.ObjectKey{Namespace: h.Namespace, Name: h.Name}
	var holds bool
	var err error
	switch claim.Spec.Kind {
	case rosterv1.ClaimDoorNumber:
		org := &rosterv1.Organization{}
		if err = c.Reader.Get(ctx, key, org); err == nil {
			holds = org.DeletionTimestamp.IsZero() &&
				(org.Status.DoorNumber == claim.Spec.Value || org.Spec.DoorNumber == claim.Spec.Value)
		}
	case rosterv1.ClaimUsername:
		m := &rosterv1.Member{}
		if err = c.Reader.Get(ctx, key, m); err == nil {
			holds = m.DeletionTimestamp.IsZero() && m.Spec.Username == claim.Spec.Value
		}
	default:
		return false, fmt.Errorf("claim %s has unknown kind %q", claim.Name, claim.Spec.Kind)
	}
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return holds, err
}

// TakeUsername reserves a username in the member's organization for the member.
func (c Claims) TakeUsername(ctx context.Context, m *rosterv1.Member, username string) error {
	username = strings.TrimSpace(username)
	return c.Take(ctx, rosterv1.ClaimUsername, UsernameClaimName(m.Namespace, m.Spec.OrganizationRef.Name, username), username,
		rosterv1.ClaimHolder{Kind: "Member", Namespace: m.Namespace, Name: m.Name})
}

// UsernameHolder returns the Member that holds a username in an organization, if any.
func (c Claims) UsernameHolder(ctx context.Context, namespace, org, username string) (*rosterv1.ClaimHolder, error) {
	return c.Holder(ctx, UsernameClaimName(namespace, org, username))
}
