package controllers

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// Shard is the part of the organizations one manager reconciles, when one manager is not
// enough: every replica started with --shard=NAME reconciles the Organizations labelled
// org.roster.dev/shard=NAME and their children, with its own leader election. The default
// shard also takes what carries no label. The empty Shard reconciles everything, as a
// single manager does.
//
// A named shard's manager that serves no webhooks caches only its own organizations'
// children (operator.NewShardManager); the default shard and any manager serving the
// webhooks cache everything, because the webhooks look people up in every organization and
// the default shard labels the children nobody has labelled yet. What a narrowed cache may
// not hold (a child not labelled yet, one a moved organization has not taken along) the
// Organization controller looks for past the cache.
type Shard string

// Has reports whether obj is this shard's to reconcile.
func (s Shard) Has(obj client.Object) bool {
	if s == "" {
		return true
	}
	label, ok := obj.GetLabels()[rosterv1.LabelShard]
	if !ok || label == "" {
		label = rosterv1.DefaultShard
	}
	return label == string(s)
}

// followShard gives obj its Organization's shard label. It reports whether the label
// changed: the pass then stops, its metadata patch carries the label, and the shard it names
// takes the object from there, so one object is never worked on by two shards.
func followShard(obj client.Object, org *rosterv1.Organization) bool {
	want := org.GetLabels()[rosterv1.LabelShard]
	if obj.GetLabels()[rosterv1.LabelShard] == want {
		return false
	}
	setLabels(obj, map[string]string{rosterv1.LabelShard: want})
	return true
}
