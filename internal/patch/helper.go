// Package patch sends what a reconcile changed on an object as merge patches, in the style of
// Cluster API's patch helper: a reconciler takes a snapshot when it starts, changes the object
// in memory, and one deferred call writes the metadata and the status it changed. Nothing is
// written when nothing changed, so an idempotent Reconcile makes no writes on a second pass.
package patch

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Helper remembers an object as it was read.
type Helper struct {
	client client.Client
	// before is a deep copy of the object as read (or as last written). Most passes change
	// nothing, and comparing two typed objects costs little; only a changed object is turned
	// into JSON to find the patch.
	before client.Object
	locked bool
}

// Lock makes the next Patch carry the object's resourceVersion, so that it fails with a
// Conflict when the object changed since it was read. A reconciler asks for it when what it
// writes must rest on exactly what it read, such as a phase that a label on the object grants.
func (h *Helper) Lock() { h.locked = true }

// NewHelper snapshots obj; call it right after the object was read.
func NewHelper(obj client.Object, c client.Client) (*Helper, error) {
	before, ok := obj.DeepCopyObject().(client.Object)
	if !ok {
		return nil, fmt.Errorf("snapshot %T: its copy is not a client.Object", obj)
	}
	return &Helper{client: c, before: before}, nil
}

// Patch writes the changes made to obj since the snapshot: labels, annotations, finalizers
// and owner references through the object, then status through the status subresource. A
// controller never patches spec: spec belongs to the object's owner. Merge patches carry no
// resourceVersion; status has one writer, its controller, so there is nothing to race.
func (h *Helper) Patch(ctx context.Context, obj client.Object) error {
	if reflect.DeepEqual(h.before, obj) {
		h.locked = false
		return nil
	}
	before, err := runtime.DefaultUnstructuredConverter.ToUnstructured(h.before)
	if err != nil {
		return fmt.Errorf("convert %T: %w", obj, err)
	}
	after, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return fmt.Errorf("convert %T: %w", obj, err)
	}
	status := after["status"]

	metaPatch, err := mergePatch(pick(before, "metadata"), pick(after, "metadata"))
	if err != nil {
		return err
	}
	if h.locked {
		defer func() { h.locked = false }()
		if metaPatch, err = withResourceVersion(metaPatch, obj.GetResourceVersion()); err != nil {
			return err
		}
	}
	if metaPatch != nil {
		if err := h.client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, metaPatch)); err != nil {
			return fmt.Errorf("patch metadata: %w", err)
		}
	}

	statusPatch, err := mergePatch(map[string]any{"status": before["status"]}, map[string]any{"status": status})
	if err != nil {
		return err
	}
	if h.locked && statusPatch != nil {
		if statusPatch, err = withResourceVersion(statusPatch, obj.GetResourceVersion()); err != nil {
			return err
		}
	}
	if statusPatch != nil {
		if err := h.client.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, statusPatch)); err != nil {
			return fmt.Errorf("patch status: %w", err)
		}
	}
	// Later patches in the same reconcile start from what was written.
	h.before = obj.DeepCopyObject().(client.Object)
	return nil
}

// pick keeps only the metadata a controller may change.
func pick(obj map[string]any, key string) map[string]any {
	m, _ := obj[key].(map[string]any)
	out := map[string]any{}
	for _, k := range []string{"labels", "annotations", "finalizers", "ownerReferences"} {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return map[string]any{key: out}
}

// mergePatch returns the JSON merge patch from before to after, or nil when they are equal.
func mergePatch(before, after map[string]any) ([]byte, error) {
	b, err := json.Marshal(before)
	if err != nil {
		return nil, err
	}
	a, err := json.Marshal(after)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatch.CreateMergePatch(b, a)
	if err != nil {
		return nil, fmt.Errorf("compute merge patch: %w", err)
	}
	if string(p) == "{}" {
		return nil, nil
	}
	return p, nil
}

// withResourceVersion adds metadata.resourceVersion to a merge patch, which makes the API
// server refuse it with a Conflict when the object changed since that version.
func withResourceVersion(p []byte, rv string) ([]byte, error) {
	if p == nil {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return nil, err
	}
	md, _ := m["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
	}
	md["resourceVersion"] = rv
	m["metadata"] = md
	return json.Marshal(m)
}
