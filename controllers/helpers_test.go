package controllers_test

import (
	"context"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/operator"
)

type eventsv1List struct{ eventsv1.EventList }

// kstatusOf reads obj from the API server and computes its kstatus, as Flux and kubectl
// wait do.
func kstatusOf(ctx context.Context, obj client.Object) *status.Result {
	GinkgoHelper()
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	Expect(err).NotTo(HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: u})
	Expect(err).NotTo(HaveOccurred())
	return res
}

// expectStatus waits until obj's kstatus is want, with message in its message.
func expectStatus(ctx context.Context, obj client.Object, want status.Status, message string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		res := kstatusOf(ctx, obj)
		g.Expect(res.Status).To(Equal(want), "%s/%s: %s", obj.GetNamespace(), obj.GetName(), res.Message)
		g.Expect(res.Message).To(ContainSubstring(message))
	}, timeout, interval).Should(Succeed())
}

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
	defer removeWebhooks(ctx, &admissionregistrationv1.ValidatingWebhookConfigurationList{})()
	f()
}

// removeWebhooks deletes every webhook configuration of a list's kind, waits until the
// API server stops calling them (it learns of the change asynchronously), and returns
// what puts them back and waits until it calls them again.
func removeWebhooks(ctx context.Context, list client.ObjectList) func() {
	Expect(k8sClient.List(ctx, list)).To(Succeed())
	items, err := meta.ExtractList(list)
	Expect(err).NotTo(HaveOccurred())
	Expect(items).NotTo(BeEmpty())
	for _, it := range items {
		Expect(k8sClient.Delete(ctx, it.(client.Object))).To(Succeed())
	}
	_, validating := list.(*admissionregistrationv1.ValidatingWebhookConfigurationList)
	Eventually(func() bool { return webhookCalled(validating) }, timeout, interval).Should(BeFalse())
	return func() {
		for _, it := range items {
			o := it.(client.Object)
			o.SetResourceVersion("")
			o.SetUID("")
			// The spec's context may be over by the time cleanup runs.
			Expect(k8sClient.Create(context.Background(), o)).To(Succeed())
		}
		if managerDone != nil && !closed(managerDone) {
			Eventually(func() bool { return webhookCalled(validating) }, timeout, interval).Should(BeTrue())
		}
	}
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// webhookCalled probes whether the API server calls Roster's validating (or mutating)
// webhook now: the validating one refuses a second organization with the probe's door
// number; the mutating one fills in spec.invitedBy (asked as the probe's admin, whom the
// validating webhook, if it is there, lets invite).
func webhookCalled(validating bool) bool {
	ctx := context.Background()
	if validating {
		err := k8sClient.Create(ctx, &rosterv1.Organization{
			ObjectMeta: metav1.ObjectMeta{Name: "probe-2", Namespace: probeNamespace},
			Spec:       rosterv1.OrganizationSpec{DisplayName: "probe", DoorNumber: probeDoorNumber},
		}, client.DryRunAll)
		return err != nil
	}
	inv := &rosterv1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: probeNamespace},
		Spec: rosterv1.InvitationSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "probe"},
			Method: rosterv1.InvitationMethodLink, Invitee: rosterv1.Invitee{Name: "probe"}},
	}
	return adminClient.Create(ctx, inv, client.DryRunAll) == nil && inv.Spec.InvitedBy != ""
}
