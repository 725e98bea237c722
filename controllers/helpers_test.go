package controllers_test

import (
	"context"
	"sync"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/roster-dev/roster/internal/operator"
)

type eventsv1List struct{ eventsv1.EventList }

// warningRecorder collects the admission warnings the API server sends back.
type warningRecorder struct {
	mu       sync.Mutex
	warnings []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

func (w *warningRecorder) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.warnings...)
}

// asUserWarned is asUser with the warnings recorded.
func asUserWarned(name string, w *warningRecorder) client.Client {
	cfg := rest.CopyConfig(testEnv.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: name, Groups: []string{"system:masters"}}
	cfg.WarningHandler = w
	c, err := client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// k8sClientAs is a plain client with cfg's identity.
func k8sClientAs(cfg *rest.Config) client.Client {
	c, err := client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// withoutValidatingWebhook runs f as if the validating webhook were down or bypassed, as
// when a GitOps tool applies objects before the webhook is installed.
func withoutValidatingWebhook(ctx context.Context, f func()) {
	list := &admissionregistrationv1.ValidatingWebhookConfigurationList{}
	Expect(k8sClient.List(ctx, list)).To(Succeed())
	Expect(list.Items).NotTo(BeEmpty())
	for i := range list.Items {
		Expect(k8sClient.Delete(ctx, &list.Items[i])).To(Succeed())
	}
	defer func() {
		for i := range list.Items {
			c := list.Items[i].DeepCopy()
			c.ResourceVersion, c.UID = "", ""
			Expect(k8sClient.Create(ctx, c)).To(Succeed())
		}
	}()
	f()
}
