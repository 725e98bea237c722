package v1alpha1_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// TestEveryFieldIsExplained keeps `kubectl explain` useful: every field of every generated
// CRD must carry a description. Root metadata is exempt: kubectl explains it from ObjectMeta.
func TestEveryFieldIsExplained(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) != 7 {
		t.Fatalf("want the 7 generated CRDs, got %v (%v)", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(data, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, v := range crd.Spec.Versions {
			root := v.Schema.OpenAPIV3Schema
			var missing []string
			for name, prop := range root.Properties {
				if name == "metadata" {
					continue
				}
				missing = append(missing, undescribed(name, prop)...)
			}
			if root.Description == "" {
				missing = append(missing, "<root>")
			}
			sort.Strings(missing)
			for _, m := range missing {
				t.Errorf("%s %s: field %s has no description", crd.Name, v.Name, m)
			}
		}
	}
}

func undescribed(path string, s apiextensionsv1.JSONSchemaProps) []string {
	var missing []string
	if s.Description == "" {
		missing = append(missing, path)
	}
	for name, prop := range s.Properties {
		missing = append(missing, undescribed(path+"."+name, prop)...)
	}
	if s.Items != nil && s.Items.Schema != nil {
		for name, prop := range s.Items.Schema.Properties {
			missing = append(missing, undescribed(path+"[]."+name, prop)...)
		}
	}
	return missing
}
