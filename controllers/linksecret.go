package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
)

// linkSecret is the Secret that holds an object's current link token: its hash (which the
// pages find it by), the generation it was made for, and, where an admin must copy it, the
// link itself. The object owns it, so it goes when the object goes.
type linkSecret struct {
	// owner is the object the link opens.
	owner client.Object
	// name is the Secret's name.
	name string
	// labels are put on the Secret besides Roster's own and the hash label.
	labels map[string]string
	// annotations are put on the Secret, for what does not fit in a label value.
	annotations map[string]string
	// generation is the send or rotation the token belongs to.
	generation string
}

// store writes a token's hash, and what must be kept with it (the link an admin copies, or
// the token while the message carrying it is delivered), into the Secret, replacing the
// token before it: the old link stops working.
func (s linkSecret) store(ctx context.Context, c client.Client, hash string, keep map[string]string) error {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.owner.GetNamespace()}}
	_, err := controllerutil.CreateOrPatch(ctx, c, sec, func() error {
		if sec.Labels == nil {
			sec.Labels = map[string]string{}
		}
		for k, v := range s.labels {
			sec.Labels[k] = v
		}
		sec.Labels[rosterv1.LabelPartOf] = rosterv1.PartOfRoster
		sec.Labels[linktoken.HashLabel] = linktoken.LabelValue(hash)
		if len(s.annotations) > 0 && sec.Annotations == nil {
			sec.Annotations = map[string]string{}
		}
		for k, v := range s.annotations {
			sec.Annotations[k] = v
		}
		sec.Type = corev1.SecretTypeOpaque
		sec.Data = map[string][]byte{linktoken.SecretKeyHash: []byte(hash), linktoken.SecretKeyGeneration: []byte(s.generation)}
		for k, v := range keep {
			sec.Data[k] = []byte(v)
		}
		return controllerutil.SetControllerReference(s.owner, sec, c.Scheme())
	})
	if err != nil {
		return fmt.Errorf("store link token: %w", err)
	}
	return nil
}

// ensure keeps a link an admin copies: when the Secret already holds one for this
// generation it is kept, otherwise a new token is made and stored with the link linkFor
// builds from it. It reports whether it made a new one.
func (s linkSecret) ensure(ctx context.Context, c client.Client, linkFor func(token string) string) (made bool, err error) {
	sec := &corev1.Secret{}
	err = c.Get(ctx, client.ObjectKey{Namespace: s.owner.GetNamespace(), Name: s.name}, sec)
	if err == nil && string(sec.Data[linktoken.SecretKeyGeneration]) == s.generation && len(sec.Data[linktoken.SecretKeyLink]) > 0 &&
		metav1.IsControlledBy(sec, s.owner) {
		return false, nil
	}
	if client.IgnoreNotFound(err) != nil {
		return false, err
	}
	token, hash, err := linktoken.New()
	if err != nil {
		return false, err
	}
	return true, s.store(ctx, c, hash, map[string]string{linktoken.SecretKeyLink: linkFor(token)})
}
