package patch

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// recorded is one patch the helper sent: "status" or "" for the object, and its body.
type recorded struct{ sub, body string }

func newClient(t *testing.T, obj client.Object) (client.Client, *[]recorded) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	var calls []recorded
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(obj).WithStatusSubresource(obj).
		WithInterceptorFuncs(interceptor.Funcs{
			Patch: func(ctx context.Context, c client.WithWatch, o client.Object, p client.Patch, opts ...client.PatchOption) error {
				data, _ := p.Data(o)
				calls = append(calls, recorded{"", string(data)})
				return c.Patch(ctx, o, p, opts...)
			},
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
				data, _ := p.Data(o)
				calls = append(calls, recorded{sub, string(data)})
				return c.SubResource(sub).Patch(ctx, o, p, opts...)
			},
		}).Build()
	return c, &calls
}

func pod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"a": "1"}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Message: "waiting"}}
}

func TestPatchWritesOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	obj := pod()
	c, calls := newClient(t, obj)
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}

	h, err := NewHelper(obj, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Patch(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if len(*calls) != 0 {
		t.Fatalf("an unchanged object was patched: %+v", *calls)
	}

	obj.Status.Phase = corev1.PodRunning
	if err := h.Patch(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if len(*calls) != 1 || (*calls)[0].sub != "status" || (*calls)[0].body != `{"status":{"phase":"Running"}}` {
		t.Fatalf("want one status patch of the phase, got %+v", *calls)
	}

	// The next patch starts from what was written: only the new change goes.
	obj.Labels["b"] = "2"
	if err := h.Patch(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if len(*calls) != 2 || (*calls)[1].sub != "" || (*calls)[1].body != `{"metadata":{"labels":{"b":"2"}}}` {
		t.Fatalf("want one metadata patch of the new label, got %+v", *calls)
	}

	got := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.PodRunning || got.Labels["b"] != "2" || got.Status.Message != "waiting" {
		t.Fatalf("stored %+v %+v", got.Labels, got.Status)
	}
}

func TestLockCarriesTheResourceVersionRead(t *testing.T) {
	ctx := context.Background()
	obj := pod()
	c, calls := newClient(t, obj)
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
	h, _ := NewHelper(obj, c)
	h.Lock()
	// Nothing changed: nothing is sent, and the lock does not outlive the call.
	if err := h.Patch(ctx, obj); err != nil || len(*calls) != 0 {
		t.Fatalf("unchanged and locked: err %v, calls %+v", err, *calls)
	}
	obj.Status.Phase = corev1.PodRunning
	if err := h.Patch(ctx, obj); err != nil || len(*calls) != 1 || strings.Contains((*calls)[0].body, "resourceVersion") {
		t.Fatalf("a patch after an unchanged locked one must carry no resourceVersion: err %v, calls %+v", err, *calls)
	}

	h.Lock()
	stale := obj.DeepCopy()
	stale.ResourceVersion = "1" // an older copy than the API server's
	h.before = stale.DeepCopy()
	stale.Status.Message = "stale"
	if err := h.Patch(ctx, stale); err == nil {
		t.Fatalf("a locked patch of a stale copy was accepted; calls %+v", *calls)
	}
	if !strings.Contains((*calls)[len(*calls)-1].body, `"resourceVersion":"1"`) {
		t.Fatalf("the locked patch did not carry the version read: %+v", *calls)
	}
}
