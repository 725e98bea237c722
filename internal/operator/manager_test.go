package operator_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/operator"
)

// TestShardCache: a named shard's cache takes its own children only; Organizations and
// Roster's Secrets are cached as for every manager.
func TestShardCache(t *testing.T) {
	opts := operator.ShardCacheOptions("blue")
	byKind := map[string]labels.Selector{}
	for obj, by := range opts.ByObject {
		byKind[kindOf(obj)] = by.Label
	}
	for _, kind := range []string{"Invitation", "Member", "ExternalUser", "Collaboration"} {
		sel := byKind[kind]
		if sel == nil {
			t.Fatalf("%s is cached whole", kind)
		}
		for shard, want := range map[string]bool{"blue": true, "green": false, "": false, rosterv1.DefaultShard: false} {
			set := labels.Set{}
			if shard != "" {
				set[rosterv1.LabelShard] = shard
			}
			if got := sel.Matches(set); got != want {
				t.Errorf("%s labelled %q cached: %v, want %v", kind, shard, got, want)
			}
		}
	}
	if _, ok := byKind["Organization"]; ok {
		t.Error("Organizations are narrowed; a shard reads any one it follows")
	}
	if byKind["Secret"] == nil || byKind["Secret"].String() != (labels.Set{rosterv1.LabelPartOf: rosterv1.PartOfRoster}).String() {
		t.Errorf("Secrets: %v", byKind["Secret"])
	}
	for _, c := range []struct {
		shard    string
		webhooks bool
		want     bool
	}{{"blue", false, true}, {"blue", true, false}, {rosterv1.DefaultShard, false, false}, {"", false, false}} {
		if got := operator.NarrowsCache(c.shard, c.webhooks); got != c.want {
			t.Errorf("NarrowsCache(%q, webhooks %v) = %v", c.shard, c.webhooks, got)
		}
	}
}

func kindOf(obj client.Object) string {
	gvks, _, err := operator.NewScheme().ObjectKinds(obj)
	if err != nil || len(gvks) == 0 {
		return "?"
	}
	return gvks[0].Kind
}
