package controllers

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
)

// modulePage is the portal page a module link opens: <portalURL>/module/<token>.
const modulePage = "module"

// moduleLinkSecretName is the Secret that holds the link of one spec.moduleLinks entry:
// named after the organization and a hash of the module, since a module's name may be
// anything up to 253 characters and need not be a valid object name.
func moduleLinkSecretName(org *rosterv1.Organization, kind rosterv1.ModuleKind, name string) string {
	sum := linktoken.Hash(string(kind) + "/" + name)[:12]
	prefix := org.Name
	if n := validation.DNS1123SubdomainMaxLength - len("-module-") - len(sum); len(prefix) > n {
		prefix = strings.TrimRight(prefix[:n], ".-")
	}
	return prefix + "-module-" + sum
}

// syncModuleLinks keeps one link Secret for every spec.moduleLinks entry, with a new token
// whenever the entry's linkGeneration changes, and deletes the Secrets of entries that are
// gone, so their links stop working. The Secrets are the Organization's and carry
// LabelModuleLink, not LabelOrganization, so that a module link never opens the public join
// page, nor the public link a module's page.
func (r *OrganizationReconciler) syncModuleLinks(ctx context.Context, org *rosterv1.Organization) error {
	want := map[string]bool{}
	var links []rosterv1.ModuleLinkStatus
	for _, l := range org.Spec.ModuleLinks {
		name := moduleLinkSecretName(org, l.Kind, l.Name)
		want[name] = true
		labels := map[string]string{rosterv1.LabelModuleLink: org.Name, rosterv1.LabelModuleKind: string(l.Kind)}
		if len(validation.IsValidLabelValue(l.Name)) == 0 {
			labels[rosterv1.LabelModuleName] = l.Name
		}
		s := linkSecret{owner: org, name: name, labels: labels, annotations: map[string]string{rosterv1.AnnotationModuleName: l.Name},
			generation: strconv.FormatInt(l.LinkGeneration, 10)}
		made, err := s.ensure(ctx, r.Client, func(token string) string {
			return linktoken.Link(portalURL(org, r.PortalURL), modulePage, token)
		})
		if err != nil {
			return fmt.Errorf("link of %s %s: %w", l.Kind, l.Name, err)
		}
		if made && previousModuleLink(org, l) != nil {
			r.Recorder.Eventf(org, nil, corev1.EventTypeNormal, "ModuleLinkRotated", "Rotate",
				"A new link for %s %s was made; the old one no longer works", l.Kind, l.Name)
		}
		links = append(links, rosterv1.ModuleLinkStatus{Kind: l.Kind, Name: l.Name, SecretRef: rosterv1.LocalObjectReference{Name: name},
			LinkGeneration: l.LinkGeneration})
	}
	secrets := &corev1.SecretList{}
	if err := r.List(ctx, secrets, client.InNamespace(org.Namespace), client.MatchingLabels{
		rosterv1.LabelPartOf: rosterv1.PartOfRoster, rosterv1.LabelModuleLink: org.Name}); err != nil {
		return err
	}
	for i := range secrets.Items {
		sec := &secrets.Items[i]
		if want[sec.Name] || !metav1.IsControlledBy(sec, org) {
			continue
		}
		if err := r.Delete(ctx, sec, client.Preconditions{UID: &sec.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete the link of a module no longer offered: %w", err)
		}
	}
	org.Status.ModuleLinks = links
	return nil
}

// previousModuleLink is the status entry of a module link made before this pass, if any.
func previousModuleLink(org *rosterv1.Organization, l rosterv1.ModuleLink) *rosterv1.ModuleLinkStatus {
	for i, s := range org.Status.ModuleLinks {
		if s.Kind == l.Kind && s.Name == l.Name {
			return &org.Status.ModuleLinks[i]
		}
	}
	return nil
}
