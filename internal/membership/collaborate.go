package membership

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
)

// An organization offers links on which people outside it ask to join one task, project,
// file or group (spec.moduleLinks). Asking ends in the person's Collaboration with the module
// Pending, which an admin approves or declines; nothing an outsider does on the link lets
// them into a module.

// ModuleInvite is what a valid module link leads to.
type ModuleInvite struct {
	Organization *rosterv1.Organization
	// Link is the Organization's spec.moduleLinks entry the link was made for.
	Link rosterv1.ModuleLink
}

// ModuleForLink finds the organization and module a module link opens. The link works only
// through a Secret the Organization controls and its status names, for the generation its
// spec asks for now: raising linkGeneration, or removing the entry, stops the old link at
// once, before the controller has replaced the Secret.
func (a *Acceptor) ModuleForLink(ctx context.Context, token string) (*ModuleInvite, error) {
	if !linktoken.Valid(token) {
		return nil, ErrInvalidLink
	}
	sec, err := a.secretFor(ctx, token, rosterv1.LabelModuleLink)
	if err != nil {
		return nil, err
	}
	org := &rosterv1.Organization{}
	if err := a.Client.Get(ctx, client.ObjectKey{Namespace: sec.Namespace, Name: sec.Labels[rosterv1.LabelModuleLink]}, org); err != nil {
		return nil, notFoundAs(err, ErrInvalidLink)
	}
	if !metav1.IsControlledBy(sec, org) || !org.DeletionTimestamp.IsZero() {
		return nil, ErrInvalidLink
	}
	kind, name := rosterv1.ModuleKind(sec.Labels[rosterv1.LabelModuleKind]), sec.Annotations[rosterv1.AnnotationModuleName]
	i := slices.IndexFunc(org.Spec.ModuleLinks, func(l rosterv1.ModuleLink) bool { return l.Kind == kind && l.Name == name })
	if i < 0 {
		return nil, ErrInvalidLink
	}
	link := org.Spec.ModuleLinks[i]
	named := slices.ContainsFunc(org.Status.ModuleLinks, func(s rosterv1.ModuleLinkStatus) bool {
		return s.Kind == kind && s.Name == name && s.SecretRef.Name == sec.Name
	})
	if !named || string(sec.Data[linktoken.SecretKeyGeneration]) != strconv.FormatInt(link.LinkGeneration, 10) {
		return nil, ErrInvalidLink
	}
	return &ModuleInvite{Organization: org, Link: link}, nil
}

// errNotSamePerson: the object with a person's deterministic name is someone else's, which
// only an admin who chose that name on purpose can cause.
var errNotSamePerson = errors.New("a Collaboration with this person's name belongs to someone else")

// askBackoff paces the rounds of AskToJoin: a round loses only to a write that happened in
// between, and waiting a random while lets requests that collide spread out.
var askBackoff = wait.Backoff{Steps: 30, Duration: 5 * time.Millisecond, Factor: 1.3, Jitter: 1, Cap: 500 * time.Millisecond}

// errAskAgain makes AskToJoin read again and retry.
var errAskAgain = errors.New("the collaboration changed while the request was added; try again")

// AskToJoin records that person asks to join link's module of org: the module is added,
// Pending, to the person's Collaboration in the organization, or a Collaboration is made
// for them. The caller has verified the person's email (or, without one, phone) with a
// code. Asking again for a module the person already has, approved or not, changes nothing.
//
// The person's Collaboration is found by the API server, with field selectors on the
// organization and the email (the phone when there is no email), past any cache. A new one
// gets a name derived from the organization and that address, so two requests at once
// cannot make two objects: the second Create fails with AlreadyExists and that request adds
// its module to the first's object. Every change is a patch that carries the
// resourceVersion it read, so two requests adding modules at once cannot drop each other's.
func (a *Acceptor) AskToJoin(ctx context.Context, org *rosterv1.Organization, link rosterv1.ModuleLink, person rosterv1.Collaborator) (*rosterv1.Collaboration, error) {
	person.DisplayName = strings.TrimSpace(person.DisplayName)
	person.Email = strings.ToLower(strings.TrimSpace(person.Email))
	person.Phone = strings.TrimSpace(person.Phone)
	if person.DisplayName == "" || person.Email == "" && person.Phone == "" {
		return nil, errors.New("a name and an email address or phone number are required")
	}
	if !org.DeletionTimestamp.IsZero() {
		return nil, ErrJoinClosed
	}
	module := rosterv1.Module{Kind: link.Kind, Name: link.Name, Role: link.Role, Approval: rosterv1.ModulePending}
	var out *rosterv1.Collaboration
	err := retry.OnError(askBackoff, func(err error) bool { return errors.Is(err, errAskAgain) }, func() error {
		var err error
		out, err = a.askOnce(ctx, org, module, person)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ask to join: %w", err)
	}
	return out, nil
}

// askOnce is one round of AskToJoin; errAskAgain when another write came in between.
func (a *Acceptor) askOnce(ctx context.Context, org *rosterv1.Organization, module rosterv1.Module, person rosterv1.Collaborator) (*rosterv1.Collaboration, error) {
	c, err := a.collaborationOf(ctx, org, person)
	if err != nil {
		return nil, err
	}
	if c == nil {
		c = &rosterv1.Collaboration{
			ObjectMeta: metav1.ObjectMeta{Namespace: org.Namespace, Name: CollaborationName(org, person)},
			Spec: rosterv1.CollaborationSpec{OrganizationRef: rosterv1.OrganizationReference{Name: org.Name}, Collaborator: person,
				Modules: []rosterv1.Module{module}},
		}
		err := a.Client.Create(ctx, c)
		if apierrors.IsAlreadyExists(err) {
			// Another request made it a moment ago; the next round adds to it.
			if err := a.samePersonAt(ctx, org, person); err != nil {
				return nil, err
			}
			return nil, errAskAgain
		}
		return c, err
	}
	if slices.ContainsFunc(c.Spec.Modules, func(m rosterv1.Module) bool { return m.Kind == module.Kind && m.Name == module.Name }) {
		return c, nil
	}
	orig := c.DeepCopy()
	c.Spec.Modules = append(c.Spec.Modules, module)
	err = a.Client.Patch(ctx, c, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil, errAskAgain // changed or deleted since it was read: read again
	}
	return c, err
}

// collaborationOf finds the person's Collaboration in org by the API server's field
// selectors, the oldest when an admin made more than one; nil when there is none.
func (a *Acceptor) collaborationOf(ctx context.Context, org *rosterv1.Organization, p rosterv1.Collaborator) (*rosterv1.Collaboration, error) {
	fields := client.MatchingFields{rosterv1.FieldOrganization: org.Name}
	if p.Email != "" {
		fields[rosterv1.FieldCollaboratorEmail] = p.Email
	} else {
		fields[rosterv1.FieldCollaboratorPhone] = p.Phone
	}
	list := &rosterv1.CollaborationList{}
	if err := a.reader().List(ctx, list, client.InNamespace(org.Namespace), fields); err != nil {
		return nil, fmt.Errorf("find the collaboration: %w", err)
	}
	var found *rosterv1.Collaboration
	for i := range list.Items {
		c := &list.Items[i]
		if !c.DeletionTimestamp.IsZero() {
			continue
		}
		if found == nil || c.CreationTimestamp.Before(&found.CreationTimestamp) ||
			c.CreationTimestamp.Equal(&found.CreationTimestamp) && c.Name < found.Name {
			found = c
		}
	}
	return found, nil
}

// samePersonAt checks that the Collaboration at the person's deterministic name is theirs.
func (a *Acceptor) samePersonAt(ctx context.Context, org *rosterv1.Organization, p rosterv1.Collaborator) error {
	c := &rosterv1.Collaboration{}
	err := a.reader().Get(ctx, client.ObjectKey{Namespace: org.Namespace, Name: CollaborationName(org, p)}, c)
	if apierrors.IsNotFound(err) {
		return nil // deleted again meanwhile; the next round makes it
	}
	if err != nil {
		return err
	}
	c.Spec.Collaborator.Email = strings.ToLower(c.Spec.Collaborator.Email)
	if c.Spec.OrganizationRef.Name != org.Name || c.Spec.Collaborator.Email != p.Email || p.Email == "" && c.Spec.Collaborator.Phone != p.Phone {
		return errNotSamePerson
	}
	return nil
}

// CollaborationName is the name of the Collaboration made for a person who asks to join on
// a module link: the organization's name and a hash of the organization and the person's
// email (their phone when they have no email), so that every request of one person leads
// to one object.
func CollaborationName(org *rosterv1.Organization, p rosterv1.Collaborator) string {
	key := "email:" + strings.ToLower(p.Email)
	if p.Email == "" {
		key = "phone:" + p.Phone
	}
	sum := linktoken.Hash(org.Name + "\x00" + key)[:16]
	prefix := org.Name
	if n := validation.DNS1123SubdomainMaxLength - 1 - len(sum); len(prefix) > n {
		prefix = strings.TrimRight(prefix[:n], ".-")
	}
	return prefix + "-" + sum
}
