package operator_test

import (
	"maps"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// TestDeployConfigBuilds keeps config/default installable: it builds with kustomize, and
// the webhooks point at the manager's Service in the manager's namespace.
func TestDeployConfigBuilds(t *testing.T) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), "../../config/default")
	if err != nil {
		t.Fatalf("kustomize build config/default: %v", err)
	}
	kinds := map[string]int{}
	aggregated := map[string]string{}
	for _, r := range res.Resources() {
		kinds[r.GetKind()]++
		if r.GetKind() == "ClusterRole" {
			for label, v := range r.GetLabels() {
				if strings.HasPrefix(label, "rbac.authorization.k8s.io/aggregate-to-") && v == "true" {
					aggregated[r.GetName()] = strings.TrimPrefix(label, "rbac.authorization.k8s.io/aggregate-to-")
				}
			}
		}
		if r.GetKind() == "ValidatingWebhookConfiguration" || r.GetKind() == "MutatingWebhookConfiguration" {
			m, err := r.Map()
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range m["webhooks"].([]any) {
				svc := w.(map[string]any)["clientConfig"].(map[string]any)["service"].(map[string]any)
				if svc["namespace"] != "roster-system" || svc["name"] != "webhook-service" {
					t.Errorf("%s webhook points at %v/%v", r.GetName(), svc["namespace"], svc["name"])
				}
			}
		}
		if ns := r.GetNamespace(); ns != "" && ns != "roster-system" {
			t.Errorf("%s %s is in namespace %s", r.GetKind(), r.GetName(), ns)
		}
	}
	for kind, want := range map[string]int{"CustomResourceDefinition": 7, "Deployment": 1, "ClusterRole": 5,
		"ValidatingWebhookConfiguration": 1, "MutatingWebhookConfiguration": 1, "Service": 2, "Certificate": 1} {
		if kinds[kind] != want {
			t.Errorf("%d %s, want %d", kinds[kind], kind, want)
		}
	}
	// A namespace's usual admin, edit and view bindings grant Roster's user roles.
	if want := map[string]string{"roster-admin": "admin", "roster-editor": "edit", "roster-viewer": "view"}; !maps.Equal(aggregated, want) {
		t.Errorf("aggregated user roles %v, want %v", aggregated, want)
	}
}
