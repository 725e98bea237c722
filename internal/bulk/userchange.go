package bulk

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// UserSelector chooses external users for a bulk change: by name or label selector, like
// Selector, and only of Application when it is set.
type UserSelector struct {
	Selector
	// Application, when set, keeps only this application's external users; a user named
	// who is in another application is reported as Failed.
	Application string
}

func chooseExternalUsers(ctx context.Context, c client.Client, ns, org string, sel UserSelector) ([]*rosterv1.ExternalUser, []ObjectResult, error) {
	return choose(ctx, c, ns, org, sel.Selector, listExternalUsers,
		func(x *rosterv1.ExternalUser) string { return x.Spec.OrganizationRef.Name },
		func(x *rosterv1.ExternalUser) string {
			if sel.Application != "" && x.Spec.Application != sel.Application {
				return fmt.Sprintf("is a user of application %q, not %q", x.Spec.Application, sel.Application)
			}
			return ""
		})
}

// LockUsers keeps the chosen external users out completely by setting spec.access to
// Locked (F27). DisableUsers is the same change: the API has one switch for whether a
// record is in use.
func LockUsers(ctx context.Context, c client.Client, ns, org string, sel UserSelector) (EditResult, error) {
	return setUserAccess(ctx, c, ns, org, sel, rosterv1.ExternalAccessLocked)
}

// UnlockUsers lets the chosen external users sign in again by setting spec.access to
// Enabled. EnableUsers is the same change.
func UnlockUsers(ctx context.Context, c client.Client, ns, org string, sel UserSelector) (EditResult, error) {
	return setUserAccess(ctx, c, ns, org, sel, rosterv1.ExternalAccessEnabled)
}

func setUserAccess(ctx context.Context, c client.Client, ns, org string, sel UserSelector, want rosterv1.ExternalAccess) (EditResult, error) {
	return changeUsers(ctx, c, ns, org, sel, func(x *rosterv1.ExternalUser) (map[string]any, string) {
		have := x.Spec.Access
		if have == "" {
			have = rosterv1.ExternalAccessEnabled // the schema's default
		}
		if have == want {
			return nil, fmt.Sprintf("access is already %s", want)
		}
		return map[string]any{"access": want}, fmt.Sprintf("access %q → %q", have, want)
	})
}

// UnlinkUsers removes the chosen external users from their company by clearing
// spec.company (F30); they stay users of the application.
func UnlinkUsers(ctx context.Context, c client.Client, ns, org string, sel UserSelector) (EditResult, error) {
	return changeUsers(ctx, c, ns, org, sel, func(x *rosterv1.ExternalUser) (map[string]any, string) {
		if x.Spec.Company == "" {
			return nil, "has no company"
		}
		return map[string]any{"company": nil}, fmt.Sprintf("company %q → \"\"", x.Spec.Company)
	})
}

func changeUsers(ctx context.Context, c client.Client, ns, org string, sel UserSelector,
	change func(*rosterv1.ExternalUser) (map[string]any, string)) (EditResult, error) {
	users, res, err := chooseExternalUsers(ctx, c, ns, org, sel)
	if err != nil {
		return EditResult{}, err
	}
	return patchSpecs(ctx, c, users, res, change)
}

// DeleteUsers deletes the chosen external users (F18). Each is one person in one
// application; the same person's user in another application stays. The delete is
// conditional on the object's UID, so a user deleted and added again meanwhile is not
// deleted in their place.
func DeleteUsers(ctx context.Context, c client.Client, ns, org string, sel UserSelector) (EditResult, error) {
	users, res, err := chooseExternalUsers(ctx, c, ns, org, sel)
	if err != nil {
		return EditResult{}, err
	}
	for _, x := range users {
		if err := ctx.Err(); err != nil {
			return sorted(res), err
		}
		uid := x.UID
		err := c.Delete(ctx, x, client.Preconditions{UID: &uid})
		switch {
		case apierrors.IsNotFound(err):
			res = append(res, ObjectResult{Name: x.Name, Outcome: Unchanged, Message: "already deleted"})
		case err != nil:
			res = append(res, ObjectResult{Name: x.Name, Outcome: Failed, Message: err.Error()})
		default:
			res = append(res, ObjectResult{Name: x.Name, Outcome: Deleted,
				Message: fmt.Sprintf("%s, user of %s", firstNonEmpty(x.Spec.Email, x.Spec.Phone, x.Spec.DisplayName), x.Spec.Application)})
		}
	}
	return sorted(res), nil
}

// ResendConfirmation asks for the registration confirmation mail again for the chosen
// external users by raising spec.resendConfirmationRequests by one (F32).
func ResendConfirmation(ctx context.Context, c client.Client, ns, org string, sel UserSelector) (EditResult, error) {
	return bumpUsers(ctx, c, ns, org, sel, "resendConfirmationRequests", func(x *rosterv1.ExternalUser) (int64, string) {
		if x.Spec.Email == "" {
			return 0, "has no email to send the confirmation to"
		}
		x.Spec.ResendConfirmationRequests++
		return int64(x.Spec.ResendConfirmationRequests), ""
	})
}

// ResendWelcome asks for the welcome mail with the portal link again for the chosen
// external users by raising spec.resendWelcomeRequests by one (F32).
func ResendWelcome(ctx context.Context, c client.Client, ns, org string, sel UserSelector) (EditResult, error) {
	return bumpUsers(ctx, c, ns, org, sel, "resendWelcomeRequests", func(x *rosterv1.ExternalUser) (int64, string) {
		if x.Spec.Email == "" {
			return 0, "has no email to send the welcome mail to"
		}
		x.Spec.ResendWelcomeRequests++
		return int64(x.Spec.ResendWelcomeRequests), ""
	})
}

// Relink gives the chosen external users a new invitation link by raising
// spec.invitation.linkGeneration by one (F24); the old link stops working as soon as
// Roster has made the new one.
func Relink(ctx context.Context, c client.Client, ns, org string, sel UserSelector) (EditResult, error) {
	return bumpUsers(ctx, c, ns, org, sel, "invitation.linkGeneration", func(x *rosterv1.ExternalUser) (int64, string) {
		x.Spec.Invitation.LinkGeneration++
		return x.Spec.Invitation.LinkGeneration, ""
	})
}

// bumpUsers raises a counter on each chosen user. Like Resend, the patch carries the
// resourceVersion it read and is retried on a conflict, so two admins asking at once raise
// it by two and each one's request is acted on. raise raises the counter on the object and
// returns the new value, or says why there is nothing to do.
func bumpUsers(ctx context.Context, c client.Client, ns, org string, sel UserSelector, field string,
	raise func(*rosterv1.ExternalUser) (int64, string)) (EditResult, error) {
	users, res, err := chooseExternalUsers(ctx, c, ns, org, sel)
	if err != nil {
		return EditResult{}, err
	}
	for _, x := range users {
		if err := ctx.Err(); err != nil {
			return sorted(res), err
		}
		r := ObjectResult{Name: x.Name}
		first := true
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if !first {
				fresh := &rosterv1.ExternalUser{}
				if err := c.Get(ctx, client.ObjectKeyFromObject(x), fresh); err != nil {
					return err
				}
				x = fresh
			}
			first = false
			before := x.DeepCopy()
			now, why := raise(x)
			if why != "" {
				r.Outcome, r.Message = Unchanged, why
				return nil
			}
			r.Outcome, r.Message = Changed, fmt.Sprintf("%s %s → %s", field, itoa(now-1), itoa(now))
			return c.Patch(ctx, x, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		})
		if err != nil {
			r.Outcome, r.Message = Failed, err.Error()
		}
		res = append(res, r)
	}
	return sorted(res), nil
}

// Link is one external user's current invitation link.
type Link struct {
	// Name is the ExternalUser's name.
	Name string
	// URL is the link; empty when there is none to give, and Problem then says why.
	URL string
	// ExpiresAt is when the link stops working; zero when not known.
	ExpiresAt time.Time
	// Problem says why there is no link to give.
	Problem string
}

// Links reads the current invitation link of each chosen external user (F24) from the
// Secret its status names. A link that is being replaced, or that was used to register,
// is not given: it no longer works.
func Links(ctx context.Context, c client.Client, ns, org string, sel UserSelector) ([]Link, error) {
	users, notChosen, err := chooseExternalUsers(ctx, c, ns, org, sel)
	if err != nil {
		return nil, err
	}
	var links []Link
	for _, r := range notChosen {
		links = append(links, Link{Name: r.Name, Problem: r.Message})
	}
	for _, x := range users {
		links = append(links, linkOf(ctx, c, x))
	}
	slices.SortFunc(links, func(a, b Link) int { return strings.Compare(a.Name, b.Name) })
	return links, nil
}

func linkOf(ctx context.Context, c client.Client, x *rosterv1.ExternalUser) Link {
	l := Link{Name: x.Name}
	st := x.Status
	switch {
	case st.RegisteredAt != nil:
		l.Problem = fmt.Sprintf("registered at %s; the invitation link no longer works", rfc3339(st.RegisteredAt.Time))
		return l
	case st.LinkSecretRef == nil:
		l.Problem = "has no link yet: Roster makes it shortly after the user is added"
		return l
	case st.LinkGeneration != x.Spec.Invitation.LinkGeneration:
		l.Problem = fmt.Sprintf("a new link (generation %d) is being made and the old one no longer works; ask again shortly",
			x.Spec.Invitation.LinkGeneration)
		return l
	}
	sec := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: x.Namespace, Name: st.LinkSecretRef.Name}, sec); err != nil {
		l.Problem = fmt.Sprintf("reading Secret %s: %v", st.LinkSecretRef.Name, err)
		return l
	}
	link := string(sec.Data["link"])
	if link == "" {
		l.Problem = fmt.Sprintf("Secret %s has no key %q", sec.Name, "link")
		return l
	}
	l.URL = link
	if st.LinkExpiresAt != nil {
		l.ExpiresAt = st.LinkExpiresAt.UTC()
		if !l.ExpiresAt.After(time.Now()) {
			l.URL, l.Problem = "", fmt.Sprintf("the link expired at %s; relink to make a new one", rfc3339(l.ExpiresAt))
		}
	}
	return l
}
