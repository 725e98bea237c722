package notify

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// ForOrganization resolves an organization's channels from its Secrets and template
// ConfigMap, as the manager and the portal both send for it. Only Secrets labelled as
// Roster's are in their caches.
func ForOrganization(ctx context.Context, c client.Reader, org *rosterv1.Organization) (Settings, error) {
	s := Settings{Organization: org.Namespace + "/" + org.Name}
	n := org.Spec.Notifications
	// parse reads the named Secret and hands its data to a channel's parser.
	parse := func(name string, parser func(map[string][]byte) error) error {
		sec := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: org.Namespace, Name: name}, sec); err != nil {
			if client.IgnoreNotFound(err) == nil {
				return fmt.Errorf("Secret %q not found; it must exist in namespace %s with the label app.kubernetes.io/part-of=roster", name, org.Namespace)
			}
			return err
		}
		if err := parser(sec.Data); err != nil {
			return fmt.Errorf("Secret %q: %w", name, err)
		}
		return nil
	}
	limit := func(ch Channel, perSecond *int32) {
		if perSecond != nil && *perSecond > 0 {
			if s.Limits == nil {
				s.Limits = map[Channel]Limit{}
			}
			s.Limits[ch] = Limit{Rate: rate.Limit(*perSecond), Burst: 2 * int(*perSecond)}
		}
	}
	var err error
	if n.Email != nil {
		limit(ChannelEmail, n.Email.MaxPerSecond)
		err = errors.Join(err, parse(n.Email.SMTPSecretRef.Name, func(d map[string][]byte) (e error) {
			s.Email, e = EmailSettingsFromSecret(d, n.Email.From)
			return e
		}))
	}
	if n.SMS != nil {
		limit(ChannelSMS, n.SMS.MaxPerSecond)
		err = errors.Join(err, parse(n.SMS.SecretRef.Name, func(d map[string][]byte) (e error) {
			s.SMS, e = SMSSettingsFromSecret(d)
			return e
		}))
	}
	if n.Webhook != nil {
		limit(ChannelWebhook, n.Webhook.MaxPerSecond)
		err = errors.Join(err, parse(n.Webhook.SecretRef.Name, func(d map[string][]byte) (e error) {
			s.Webhook, e = WebhookSettingsFromSecret(d)
			return e
		}))
	}
	if err != nil {
		return s, err
	}
	if n.TemplatesRef != nil {
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: org.Namespace, Name: n.TemplatesRef.Name}, cm); err != nil {
			return s, fmt.Errorf("templates ConfigMap %q: %w", n.TemplatesRef.Name, err)
		}
		s.Templates = cm.Data
	}
	return s, nil
}
