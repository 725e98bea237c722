package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestDoorChecks(t *testing.T) {
	d := &doorChecks{at: map[types.NamespacedName]doorCheck{}}
	org := types.NamespacedName{Namespace: "ns", Name: "acme"}
	now := time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)
	if d.fresh(org, "1234", now) {
		t.Fatal("fresh before any proof")
	}
	d.proved(org, "1234", now)
	switch {
	case !d.fresh(org, "1234", now.Add(doorRecheck-time.Second)):
		t.Fatal("not fresh within doorRecheck")
	case d.fresh(org, "1234", now.Add(doorRecheck)):
		t.Fatal("still fresh after doorRecheck")
	case d.fresh(org, "9999", now):
		t.Fatal("fresh for another door number")
	}
	d.forget(org)
	if d.fresh(org, "1234", now) || len(d.at) != 0 {
		t.Fatalf("remembered after forget: %v", d.at)
	}
}
