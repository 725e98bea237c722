package install_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// helmLabels are the labels the chart adds to every object's metadata for Helm's own
// bookkeeping (templates/_helpers.tpl). They are the only difference normalise removes:
// nothing else may differ between the chart and config/.
var helmLabels = []string{
	"helm.sh/chart",
	"app.kubernetes.io/managed-by",
	"app.kubernetes.io/instance",
	"app.kubernetes.io/version",
}

// normalise removes helmLabels from metadata.labels (and the map, once empty). Only the
// object's own labels: selectors and pod templates must match exactly.
func normalise(o object) object {
	o = deepCopy(o)
	meta, _ := o["metadata"].(map[string]any)
	labels, _ := meta["labels"].(map[string]any)
	for _, l := range helmLabels {
		delete(labels, l)
	}
	if labels != nil && len(labels) == 0 {
		delete(meta, "labels")
	}
	return o
}

func deepCopy(o object) object {
	c, err := plain(o)
	if err != nil {
		panic(err)
	}
	return c
}

// compare lists every difference between two renderings: objects only one side has, and
// the content of objects both have, after normalise.
func compare(helm, kustomize rendering) []string {
	var diffs []string
	for _, k := range kustomize.ids() {
		if _, ok := helm[k]; !ok {
			diffs = append(diffs, "only in config/: "+k)
		}
	}
	for _, k := range helm.ids() {
		kust, ok := kustomize[k]
		if !ok {
			diffs = append(diffs, "only in the chart: "+k)
			continue
		}
		if d := cmp.Diff(normalise(kust), normalise(helm[k])); d != "" {
			diffs = append(diffs, fmt.Sprintf("%s differs (-config/ +chart):\n%s", k, d))
		}
	}
	return diffs
}

// kustomizeDirs are the directories a full install applies: config/default, the
// monitoring in config/prometheus, and the portal in config/portal unless config/default
// already includes it.
func kustomizeDirs(t *testing.T) (dirs []string, portal bool) {
	dirs = []string{"default", "prometheus"}
	if _, ok := kustomize(t, "default")["apps/Deployment roster-system/roster-portal"]; ok {
		return dirs, true
	}
	if exists("config/portal/kustomization.yaml") {
		return append(dirs, "portal"), true
	}
	return dirs, false
}

// TestChartEqualsKustomize renders the chart with the Helm SDK and config/ with kustomize,
// and requires the same objects with the same content, but for helmLabels. The chart
// renders the Namespace only with namespace.create (helm install --create-namespace makes
// it otherwise) and the monitoring objects only where the cluster serves the Prometheus
// Operator's API, so this rendering asks for both.
func TestChartEqualsKustomize(t *testing.T) {
	dirs, portal := kustomizeDirs(t)
	if !portal {
		t.Log("config/portal does not exist here: the chart is rendered with portal.enabled=false")
	}
	want := kustomize(t, dirs...)
	got := helm(t, helmOptions{
		values: map[string]any{"namespace": map[string]any{"create": true}, "portal": map[string]any{"enabled": portal}},
		apis:   monitoringAPI,
	})
	for _, d := range compare(got, want) {
		t.Error(d)
	}
	t.Logf("%d objects compared: %s", len(want), strings.Join(want.ids(), ", "))
}

// TestChartDefaults renders the chart as `helm install roster charts/roster -n roster-system
// --create-namespace` would on a cluster without the Prometheus Operator: everything of
// config/default, config/portal and the dashboard, and neither the Namespace nor the
// ServiceMonitor and PrometheusRule, which such a cluster would refuse.
func TestChartDefaults(t *testing.T) {
	dirs, portal := kustomizeDirs(t)
	want := kustomize(t, dirs...)
	left := []string{
		"core/Namespace /roster-system",
		"monitoring.coreos.com/ServiceMonitor roster-system/roster-manager",
		"monitoring.coreos.com/PrometheusRule roster-system/roster",
	}
	for _, k := range left {
		if _, ok := want[k]; !ok {
			t.Fatalf("config/ has no %s", k)
		}
		delete(want, k)
	}
	values := map[string]any{}
	if !portal {
		values["portal"] = map[string]any{"enabled": false}
	}
	got := helm(t, helmOptions{values: values})
	for _, d := range compare(got, want) {
		t.Error(d)
	}
	if !portal {
		withPortal := helm(t, helmOptions{})
		for _, k := range []string{"apps/Deployment roster-system/roster-portal", "core/ServiceAccount roster-system/roster-portal"} {
			if _, ok := withPortal[k]; !ok {
				t.Errorf("the chart's defaults render no %s", k)
			}
		}
	}
}

// TestChartOtherNamespace installs into another namespace: every namespaced object goes
// there, the webhooks, the certificate and the manager's trusted ServiceAccounts follow it.
func TestChartOtherNamespace(t *testing.T) {
	const ns = "team-a"
	got := helm(t, helmOptions{namespace: ns, apis: monitoringAPI})
	for _, k := range got.ids() {
		o := got[k]
		meta := o["metadata"].(map[string]any)
		if n, ok := meta["namespace"]; ok && n != ns {
			t.Errorf("%s is in namespace %v", k, n)
		}
		annotations, _ := meta["annotations"].(map[string]any)
		if a, ok := annotations["cert-manager.io/inject-ca-from"]; ok && a != ns+"/roster-serving-cert" {
			t.Errorf("%s takes its CA from %v", k, a)
		}
		if kind := o["kind"]; kind == "ValidatingWebhookConfiguration" || kind == "MutatingWebhookConfiguration" {
			for _, w := range o["webhooks"].([]any) {
				if svc := w.(map[string]any)["clientConfig"].(map[string]any)["service"].(map[string]any); svc["namespace"] != ns {
					t.Errorf("%s calls a Service in %v", k, svc["namespace"])
				}
			}
		}
	}
	cert := got["cert-manager.io/Certificate "+ns+"/roster-serving-cert"]
	if names := fmt.Sprint(cert["spec"].(map[string]any)["dnsNames"]); !strings.Contains(names, "webhook-service."+ns+".svc") {
		t.Errorf("certificate names %s", names)
	}
	dep := got["apps/Deployment "+ns+"/roster-manager"]
	container := dep["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	var args []string
	for _, a := range container["args"].([]any) {
		args = append(args, a.(string))
	}
	for _, want := range []string{"--trusted-user=system:serviceaccount:team-a:roster-manager", "--portal-user=system:serviceaccount:team-a:roster-portal"} {
		if !slices.Contains(args, want) {
			t.Errorf("manager args %v lack %s", args, want)
		}
	}
}

// TestCompareFindsDifferences shows that the comparison fails when either side loses an
// object or changes one, and forgives only helmLabels.
func TestCompareFindsDifferences(t *testing.T) {
	dirs, _ := kustomizeDirs(t)
	base := kustomize(t, dirs...)
	const role = "rbac.authorization.k8s.io/ClusterRole /roster-manager"
	const dep = "apps/Deployment roster-system/roster-manager"
	mutations := map[string]func(helm, kust rendering){
		"removed from the chart": func(h, _ rendering) { delete(h, role) },
		"removed from config/":   func(_, k rendering) { delete(k, role) },
		"a rule dropped":         func(h, _ rendering) { h[role]["rules"] = h[role]["rules"].([]any)[1:] },
		"replicas changed":       func(_, k rendering) { k[dep]["spec"].(map[string]any)["replicas"] = 3.0 },
		"a selector label added": func(h, _ rendering) {
			metaOf(h[dep]["spec"].(map[string]any)["selector"])["app.kubernetes.io/instance"] = "roster"
		},
		"an object label changed": func(h, _ rendering) { labelsOf(h[dep])["app.kubernetes.io/component"] = "other" },
	}
	for name, mutate := range mutations {
		t.Run(name, func(t *testing.T) {
			h, k := clone(base), clone(base)
			mutate(h, k)
			if diffs := compare(h, k); len(diffs) == 0 {
				t.Error("no difference found")
			}
		})
	}
	t.Run("helm labels", func(t *testing.T) {
		h := clone(base)
		for _, k := range h.ids() {
			labels := labelsOf(h[k])
			for _, l := range helmLabels {
				labels[l] = "x"
			}
		}
		if diffs := compare(h, base); len(diffs) != 0 {
			t.Errorf("differences: %v", diffs)
		}
	})
}

func clone(r rendering) rendering {
	c := rendering{}
	for k, o := range r {
		c[k] = deepCopy(o)
	}
	return c
}

// labelsOf returns an object's metadata.labels, made if missing.
func labelsOf(o object) map[string]any {
	meta := o["metadata"].(map[string]any)
	if _, ok := meta["labels"].(map[string]any); !ok {
		meta["labels"] = map[string]any{}
	}
	return meta["labels"].(map[string]any)
}

// metaOf returns a label selector's matchLabels.
func metaOf(selector any) map[string]any {
	return selector.(map[string]any)["matchLabels"].(map[string]any)
}
