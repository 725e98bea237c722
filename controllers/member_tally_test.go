package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

func TestMemberTally(t *testing.T) {
	tally := newMemberTally()
	acme := types.NamespacedName{Namespace: "ns", Name: "acme"}
	m := func(name string, phase rosterv1.MemberPhase) *rosterv1.Member {
		return &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}}, Status: rosterv1.MemberStatus{Phase: phase}}
	}
	steps := []struct {
		name    string
		member  *rosterv1.Member
		deleted bool
		changed bool
		want    rosterv1.MemberCounts
	}{
		{"a new member", m("a", rosterv1.MemberInactivated), false, true, rosterv1.MemberCounts{Inactivated: 1}},
		{"the same event again", m("a", rosterv1.MemberInactivated), false, false, rosterv1.MemberCounts{Inactivated: 1}},
		{"it signs up", m("a", rosterv1.MemberPending), false, true, rosterv1.MemberCounts{Pending: 1}},
		{"another, active", m("b", rosterv1.MemberActive), false, true, rosterv1.MemberCounts{Pending: 1, Active: 1}},
		{"approved", m("a", rosterv1.MemberActive), false, true, rosterv1.MemberCounts{Active: 2}},
		{"deleted", m("b", rosterv1.MemberActive), true, true, rosterv1.MemberCounts{Active: 1}},
		{"a delete of one never counted", m("c", rosterv1.MemberActive), true, false, rosterv1.MemberCounts{Active: 1}},
	}
	for _, s := range steps {
		changed := tally.observe(s.member, s.deleted)
		if (len(changed) > 0) != s.changed || (s.changed && changed[0] != acme) {
			t.Errorf("%s: changed %v", s.name, changed)
		}
		if got := tally.of(acme); got != s.want {
			t.Errorf("%s: counts %+v, want %+v", s.name, got, s.want)
		}
	}
}
