package controllers_test

import (
	"context"
	"sync"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
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
	defer removeAll(ctx, &admissionregistrationv1.ValidatingWebhookConfigurationList{})()
	f()
}

// withoutWebhooks runs f with no admission webhooks at all.
func withoutWebhooks(ctx context.Context, f func()) {
	defer removeAll(ctx, &admissionregistrationv1.ValidatingWebhookConfigurationList{})()
	defer removeAll(ctx, &admissionregistrationv1.MutatingWebhookConfigurationList{})()
	f()
}

// removeAll deletes every object of a list's kind and returns what puts them back.
func removeAll(ctx context.Context, list client.ObjectList) func() {
	Expect(k8sClient.List(ctx, list)).To(Succeed())
	items, err := meta.ExtractList(list)
	Expect(err).NotTo(HaveOccurred())
	Expect(items).NotTo(BeEmpty())
	for _, it := range items {
		Expect(k8sClient.Delete(ctx, it.(client.Object))).To(Succeed())
	}
	return func() {
		for _, it := range items {
			o := it.(client.Object)
			o.SetResourceVersion("")
			o.SetUID("")
			// The spec's context may be over by the time cleanup runs.
			Expect(k8sClient.Create(context.Background(), o)).To(Succeed())
		}
	}
}
