package membership

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
)

// Errors of the external portal.
var (
	// ErrPortalClosed: the application has no open portal, or no self-registration.
	ErrPortalClosed = errors.New("this portal does not accept registrations at the moment")
	// ErrAlreadyRegistered: the verified address already has an account in the application.
	ErrAlreadyRegistered = errors.New("this email address already has an account here; sign in instead")
)

// ExternalInvite is what a valid individual link leads to.
type ExternalInvite struct {
	User         *rosterv1.ExternalUser
	Organization *rosterv1.Organization
	Application  *rosterv1.Application
}

// ExternalRegistration is what a person gives when registering on an application's portal.
type ExternalRegistration struct {
	DisplayName string
	// Email must be the address the link was sent to, or one the caller verified with a
	// code: a link forwarded to someone else does not make an account for their address.
	Email string
	Phone string
}

// LookupExternal finds the external user an individual link opens. The link works only
// through the Secret the user's status names and controls, for the generation both spec and
// status have, until status.linkExpiresAt, and only until the person registers.
func (a *Acceptor) LookupExternal(ctx context.Context, token string) (*ExternalInvite, error) {
	if !linktoken.Valid(token) {
		return nil, ErrInvalidLink
	}
	sec, err := a.secretFor(ctx, token, rosterv1.LabelExternalUser)
	if err != nil {
		return nil, err
	}
	x := &rosterv1.ExternalUser{}
	if err := a.Client.Get(ctx, client.ObjectKey{Namespace: sec.Namespace, Name: sec.Labels[rosterv1.LabelExternalUser]}, x); err != nil {
		return nil, notFoundAs(err, ErrInvalidLink)
	}
	gen := x.Spec.Invitation.LinkGeneration
	switch {
	case !x.DeletionTimestamp.IsZero(), x.Status.LinkSecretRef == nil, x.Status.LinkSecretRef.Name != sec.Name,
		!metav1.IsControlledBy(sec, x), x.Status.LinkGeneration != gen,
		string(sec.Data[linktoken.SecretKeyGeneration]) != strconv.FormatInt(gen, 10),
		x.Status.LinkExpiresAt == nil:
		return nil, ErrInvalidLink
	case x.Status.RegisteredAt != nil || x.Status.Phase != rosterv1.ExternalUserInvited:
		return nil, ErrInvalidLink
	case !a.Clock.Now().Before(x.Status.LinkExpiresAt.Time):
		return nil, ErrExpired
	}
	org := &rosterv1.Organization{}
	if err := a.Client.Get(ctx, client.ObjectKey{Namespace: x.Namespace, Name: x.Spec.OrganizationRef.Name}, org); err != nil {
		return nil, notFoundAs(err, ErrInvalidLink)
	}
	app := Application(org, x.Spec.Application)
	if app == nil || !app.Portal.Enabled {
		return nil, ErrPortalClosed
	}
	return &ExternalInvite{User: x, Organization: org, Application: app}, nil
}

// RegisterExternal registers the person an individual link was made for. The status write
// (emailVerified, registeredAt) is the link's claim: it carries the resourceVersion that was
// read, so of two registrations through one link only one wins, and the link stops working.
// Then the person's name, email and phone are written where they changed them.
func (a *Acceptor) RegisterExternal(ctx context.Context, token string, reg ExternalRegistration) (*rosterv1.ExternalUser, error) {
	in, err := a.LookupExternal(ctx, token)
	if err != nil {
		return nil, err
	}
	x := in.User.DeepCopy()
	now := metav1.NewTime(a.Clock.Now().UTC().Truncate(time.Second))
	x.Status.EmailVerified = true
	x.Status.RegisteredAt = &now
	if err := a.Client.Status().Update(ctx, x); err != nil {
		if apierrors.IsConflict(err) {
			return nil, ErrInvalidLink
		}
		return nil, fmt.Errorf("register: %w", err)
	}
	return a.setPersonal(ctx, x, reg)
}

// SelfRegister registers a person on an application's portal that allows it (F15, F25).
// The caller has verified reg.Email with a code. The user is created without the address,
// marked registered, and only then given it: so the controller never sees an unregistered
// user with an address and mails them an invitation link they do not need. Where the
// application asks for approval the user waits in PendingApproval (F29).
func (a *Acceptor) SelfRegister(ctx context.Context, org *rosterv1.Organization, appName string, reg ExternalRegistration) (*rosterv1.ExternalUser, error) {
	app := Application(org, appName)
	if app == nil || !app.Portal.Enabled || !app.Portal.SelfRegistration {
		return nil, ErrPortalClosed
	}
	email := strings.ToLower(strings.TrimSpace(reg.Email))
	if email == "" {
		return nil, errors.New("an email address is required")
	}
	if taken, err := a.externalEmailTaken(ctx, org, appName, email); err != nil || taken {
		if err == nil {
			err = ErrAlreadyRegistered
		}
		return nil, err
	}
	x := &rosterv1.ExternalUser{
		ObjectMeta: metav1.ObjectMeta{Namespace: org.Namespace, Name: appName + "-" + linktoken.Hash(email)[:12]},
		Spec: rosterv1.ExternalUserSpec{OrganizationRef: rosterv1.OrganizationReference{Name: org.Name}, Application: appName,
			DisplayName: strings.TrimSpace(reg.DisplayName), Phone: strings.TrimSpace(reg.Phone), Access: rosterv1.ExternalAccessEnabled},
	}
	if err := a.Client.Create(ctx, x); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, ErrAlreadyRegistered
		}
		return nil, fmt.Errorf("register: %w", err)
	}
	now := metav1.NewTime(a.Clock.Now().UTC().Truncate(time.Second))
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		x.Status.SelfRegistered, x.Status.EmailVerified, x.Status.RegisteredAt = true, true, &now
		err := a.Client.Status().Update(ctx, x)
		if apierrors.IsConflict(err) {
			if gerr := a.reader().Get(ctx, client.ObjectKeyFromObject(x), x); gerr != nil {
				return gerr
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	reg.Email = email
	return a.setPersonal(ctx, x, reg)
}

// externalEmailTaken reports whether an external user of the application has the address.
func (a *Acceptor) externalEmailTaken(ctx context.Context, org *rosterv1.Organization, app, email string) (bool, error) {
	list := &rosterv1.ExternalUserList{}
	if err := a.Client.List(ctx, list, client.InNamespace(org.Namespace), client.MatchingFields{rosterv1.IndexEmail: email}); err != nil {
		return false, err
	}
	for _, x := range list.Items {
		if x.Spec.OrganizationRef.Name == org.Name && x.Spec.Application == app {
			return true, nil
		}
	}
	return false, nil
}

// setPersonal writes the person's own name, email and phone where they differ, reading
// again past the cache when a controller wrote in between.
func (a *Acceptor) setPersonal(ctx context.Context, x *rosterv1.ExternalUser, reg ExternalRegistration) (*rosterv1.ExternalUser, error) {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		changed := false
		set := func(dst *string, v string) {
			if v = strings.TrimSpace(v); v != "" && v != *dst {
				*dst, changed = v, true
			}
		}
		set(&x.Spec.DisplayName, reg.DisplayName)
		set(&x.Spec.Email, reg.Email)
		set(&x.Spec.Phone, reg.Phone)
		if !changed {
			return nil
		}
		err := a.Client.Update(ctx, x)
		if apierrors.IsConflict(err) {
			if gerr := a.reader().Get(ctx, client.ObjectKeyFromObject(x), x); gerr != nil {
				return gerr
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("save your details: %w", err)
	}
	return x, nil
}

// reader reads past the cache where there is a reader for that.
func (a *Acceptor) reader() client.Reader {
	if a.APIReader != nil {
		return a.APIReader
	}
	return a.Client
}

// Application is the organization's application of that name, or nil.
func Application(org *rosterv1.Organization, name string) *rosterv1.Application {
	for i := range org.Spec.Applications {
		if org.Spec.Applications[i].Name == name {
			return &org.Spec.Applications[i]
		}
	}
	return nil
}
