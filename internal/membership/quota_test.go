package membership

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

func TestQuotaUse(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 30, 0, 0, time.UTC)
	hour := func(h time.Duration, n int32) rosterv1.ImportHour {
		return rosterv1.ImportHour{Start: metav1.NewTime(now.Truncate(time.Hour).Add(h)), Count: n}
	}
	cases := []struct {
		name     string
		hours    []rosterv1.ImportHour
		quota    int32
		ok       bool
		used     int32
		next     time.Time
		wantKept int
	}{
		{"first ever", nil, 2, true, 1, time.Time{}, 1},
		{"same hour adds up", []rosterv1.ImportHour{hour(0, 1)}, 2, true, 2, time.Time{}, 1},
		{"full", []rosterv1.ImportHour{hour(-3*time.Hour, 1), hour(0, 1)}, 2, false, 2, now.Truncate(time.Hour).Add(22 * time.Hour), 2},
		{"an hour 24h ago still counts: it may hold invitations younger than a day", []rosterv1.ImportHour{hour(-24*time.Hour, 2)}, 2, false, 2,
			now.Truncate(time.Hour).Add(time.Hour), 1},
		{"an hour 25h ago is dropped", []rosterv1.ImportHour{hour(-25*time.Hour, 2)}, 2, true, 1, time.Time{}, 1},
		{"quota 0 admits nothing", nil, 0, false, 0, time.Time{}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kept, used, next, ok := QuotaUse(c.hours, c.quota, now)
			if ok != c.ok || used != c.used || !next.Equal(c.next) {
				t.Errorf("QuotaUse = used %d, next %v, ok %v; want %d, %v, %v", used, next, ok, c.used, c.next, c.ok)
			}
			if len(kept) != c.wantKept {
				t.Errorf("kept %d hours, want %d", len(kept), c.wantKept)
			}
		})
	}
}

func TestRoleOrder(t *testing.T) {
	order := []rosterv1.Role{"", rosterv1.RoleMember, rosterv1.RoleAdmin, rosterv1.RoleAccountAdmin, rosterv1.RoleSuperAdmin}
	for i, a := range order {
		for j, b := range order {
			if got := Outranks(a, b); got != (i > j) {
				t.Errorf("Outranks(%q, %q) = %v", a, b, got)
			}
		}
	}
	for _, r := range order {
		if IsAdmin(r) != (r == rosterv1.RoleAdmin || r == rosterv1.RoleAccountAdmin || r == rosterv1.RoleSuperAdmin) {
			t.Errorf("IsAdmin(%q) = %v", r, IsAdmin(r))
		}
		if InvitesWithoutApproval(r) != (r == rosterv1.RoleAccountAdmin || r == rosterv1.RoleSuperAdmin) {
			t.Errorf("InvitesWithoutApproval(%q) = %v", r, InvitesWithoutApproval(r))
		}
	}
}
