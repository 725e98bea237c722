package install_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const (
	root      = "../.."
	chartDir  = root + "/charts/roster"
	namespace = "roster-system"
)

// object is one rendered Kubernetes object, as plain JSON data so that the two renderings
// compare without either side's types or number representations getting in the way.
type object = map[string]any

// id names an object the way the API server does: group, kind, namespace and name.
func id(o object) string {
	meta, _ := o["metadata"].(map[string]any)
	group, _, _ := strings.Cut(fmt.Sprint(o["apiVersion"]), "/")
	if !strings.Contains(fmt.Sprint(o["apiVersion"]), "/") {
		group = "core"
	}
	ns, _ := meta["namespace"].(string)
	return fmt.Sprintf("%s/%s %s/%s", group, o["kind"], ns, meta["name"])
}

// rendering is a set of objects by id.
type rendering map[string]object

func (r rendering) add(o object) error {
	k := id(o)
	if _, dup := r[k]; dup {
		return fmt.Errorf("%s rendered twice", k)
	}
	r[k] = o
	return nil
}

func (r rendering) ids() []string {
	ids := make([]string, 0, len(r))
	for k := range r {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	return ids
}

// plain turns any value into JSON data (maps, slices, float64, string, bool, nil).
func plain(v any) (object, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var o object
	return o, json.Unmarshal(b, &o)
}

// decodeAll reads every non-empty YAML document of a stream.
func decodeAll(r io.Reader) ([]object, error) {
	var out []object
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	for {
		var o object
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if len(o) == 0 {
			continue
		}
		p, err := plain(o)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
}

// kustomize builds each directory under config/ and puts their objects together, as
// `kubectl apply -k` of each one after the other would.
func kustomize(t *testing.T, dirs ...string) rendering {
	t.Helper()
	r := rendering{}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	for _, dir := range dirs {
		res, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, "config", dir))
		if err != nil {
			t.Fatalf("kustomize build config/%s: %v", dir, err)
		}
		for _, rs := range res.Resources() {
			m, err := rs.Map()
			if err != nil {
				t.Fatal(err)
			}
			o, err := plain(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.add(o); err != nil {
				t.Fatalf("config/%s: %v", dir, err)
			}
		}
	}
	return r
}

// helmOptions says how to render the chart: the values a user would give, the release
// namespace, and the APIs the cluster serves beyond Kubernetes' own.
type helmOptions struct {
	values    map[string]any
	namespace string
	apis      []string
}

// monitoringAPI is what a cluster with the Prometheus Operator serves.
var monitoringAPI = []string{"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule"}

// helm renders the chart with the Helm SDK as `helm install` would, CRDs included (Helm
// installs the crds/ directory before the templates).
func helm(t *testing.T, opts helmOptions) rendering {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.APIVersions = append(caps.APIVersions, opts.apis...)
	if opts.namespace == "" {
		opts.namespace = namespace
	}
	vals, err := chartutil.ToRenderValues(ch, opts.values,
		chartutil.ReleaseOptions{Name: "roster", Namespace: opts.namespace, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		t.Fatalf("chart values: %v", err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatalf("render chart: %v", err)
	}
	r := rendering{}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue // NOTES.txt, _helpers.tpl
		}
		objs, err := decodeAll(strings.NewReader(files[name]))
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, files[name])
		}
		for _, o := range objs {
			if err := r.add(o); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	for _, crd := range ch.CRDObjects() {
		objs, err := decodeAll(strings.NewReader(string(crd.File.Data)))
		if err != nil {
			t.Fatalf("%s: %v", crd.Filename, err)
		}
		for _, o := range objs {
			if err := r.add(o); err != nil {
				t.Fatalf("%s: %v", crd.Filename, err)
			}
		}
	}
	return r
}

// exists says whether a path under the repository's root exists.
func exists(path string) bool {
	_, err := os.Stat(filepath.Join(root, path))
	return err == nil
}
