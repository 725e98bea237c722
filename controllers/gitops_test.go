package controllers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Argo CD and Flux apply what is in git and report drift when the cluster differs. Roster's
// controllers write only status and their own metadata, and defaults live in the schema, so a
// second apply of the same files changes nothing.
var _ = Describe("GitOps", func() {
	It("applying the samples twice with server-side apply changes nothing the second time, and no controller owns a spec field", func(ctx context.Context) {
		ns := newNamespace(ctx)
		alice := asUser("alice@acme.example") // the samples' Organization names her as admin
		var objs []*unstructured.Unstructured
		for _, f := range []string{"v1_secret_smtp.yaml", "org_v1alpha1_organization.yaml", "org_v1alpha1_member.yaml",
			"org_v1alpha1_invitation.yaml", "org_v1alpha1_externaluser.yaml", "org_v1alpha1_collaboration.yaml"} {
			data, err := os.ReadFile(filepath.Join("..", "config", "samples", f))
			Expect(err).NotTo(HaveOccurred())
			dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
			for {
				u := &unstructured.Unstructured{}
				if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
					break
				}
				Expect(err).NotTo(HaveOccurred(), f)
				if len(u.Object) > 0 {
					u.SetNamespace(ns)
					objs = append(objs, u)
				}
			}
		}
		apply := func() {
			GinkgoHelper()
			for _, u := range objs {
				Eventually(func() error { // what names the Organization waits until it exists, as Flux retries
					return alice.Patch(ctx, u.DeepCopy(), client.Apply, client.FieldOwner("flux"), client.ForceOwnership)
				}, timeout, interval).Should(Succeed(), "%s %s", u.GetKind(), u.GetName())
			}
		}
		apply()
		live := func(u *unstructured.Unstructured) *unstructured.Unstructured {
			GinkgoHelper()
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(u.GroupVersionKind())
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), got)).To(Succeed())
			return got
		}
		// Let the controllers do their work: every Roster object has been acted on.
		Eventually(func(g Gomega) {
			for _, u := range objs {
				if u.GetKind() == "Secret" {
					continue
				}
				got := live(u)
				seen, _, _ := unstructured.NestedInt64(got.Object, "status", "observedGeneration")
				g.Expect(seen).To(Equal(got.GetGeneration()), "%s %s", u.GetKind(), u.GetName())
			}
		}, timeout, interval).Should(Succeed())

		before := map[string]any{}
		for _, u := range objs {
			got := live(u)
			before[u.GetKind()+"/"+u.GetName()] = []any{got.GetGeneration(), got.Object["spec"], got.Object["data"]}
		}
		apply()
		for _, u := range objs {
			got := live(u)
			Expect([]any{got.GetGeneration(), got.Object["spec"], got.Object["data"]}).To(Equal(before[u.GetKind()+"/"+u.GetName()]),
				"%s %s drifted on the second apply", u.GetKind(), u.GetName())
			for _, mf := range got.GetManagedFields() {
				if mf.Manager == "flux" || mf.Subresource != "" || mf.FieldsV1 == nil {
					continue
				}
				var fields map[string]any
				Expect(json.Unmarshal(mf.FieldsV1.Raw, &fields)).To(Succeed())
				Expect(fields).NotTo(HaveKey("f:spec"), "%s writes the spec of %s %s", mf.Manager, u.GetKind(), u.GetName())
			}
		}
	})
})
