package membership

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
)

// quotaWindow is the quota's period. Invitations are counted by the hour, and an hour counts
// for as long as any invitation in it may be younger than a day, so the window is a day plus
// the hour: the count is never too low, at worst an hour too cautious.
const quotaWindow = 25 * time.Hour

// InvitationQuota is how many invitations one user may create in an organization a day,
// and whether there is a limit at all: DefaultFreeImportsPerUserPerDay on the Free plan
// unless spec.importQuota sets another number; none on Paid unless it is set.
func InvitationQuota(org *rosterv1.Organization) (int32, bool) {
	if q := org.Spec.ImportQuota; q != nil && q.PerUserPerDay != nil {
		return *q.PerUserPerDay, true
	}
	if org.Spec.Plan == rosterv1.PlanPaid {
		return 0, false
	}
	return rosterv1.DefaultFreeImportsPerUserPerDay, true
}

// QuotaError refuses an invitation past the quota.
type QuotaError struct {
	User         string
	Organization *rosterv1.Organization
	Used, Quota  int32
	// Next is when the next invitation is possible; zero when the quota is 0.
	Next time.Time
}

func (e *QuotaError) Error() string {
	plan := e.Organization.Spec.Plan
	if plan == "" {
		plan = rosterv1.PlanFree
	}
	if e.Quota == 0 {
		return fmt.Sprintf("%s: Organization %s allows no invitations (spec.importQuota.perUserPerDay is 0); "+
			"an admin of the organization can raise spec.importQuota.perUserPerDay", rosterv1.ReasonQuotaExceeded, e.Organization.Name)
	}
	return fmt.Sprintf("%s: %s created %d invitations in the last 24 hours, the %s plan's limit of %d a day; the next invitation is possible at %s",
		rosterv1.ReasonQuotaExceeded, e.User, e.Used, plan, e.Quota, e.Next.UTC().Format(time.RFC3339))
}

// QuotaUse decides one more invitation against the hours counted so far: it returns the
// hours to store with it added, or a *QuotaError. Hours older than the window are dropped.
func QuotaUse(hours []rosterv1.ImportHour, quota int32, now time.Time) ([]rosterv1.ImportHour, int32, time.Time, bool) {
	hour := now.UTC().Truncate(time.Hour)
	var kept []rosterv1.ImportHour
	var used int32
	for _, h := range hours {
		if now.Before(h.Start.Add(quotaWindow)) {
			kept = append(kept, h)
			used += h.Count
		}
	}
	if used >= quota {
		var next time.Time
		if len(kept) > 0 {
			next = kept[0].Start.Add(quotaWindow)
		}
		return hours, used, next, false
	}
	if n := len(kept); n > 0 && kept[n-1].Start.Time.Equal(hour) {
		kept[n-1].Count++
	} else {
		kept = append(kept, rosterv1.ImportHour{Start: metav1.NewTime(hour), Count: 1})
	}
	return kept, used + 1, time.Time{}, true
}

// ImportLedgerName is the ledger of one user's invitations in one organization.
func ImportLedgerName(namespace, org, user string) string {
	return "import." + linktoken.Hash(namespace + "/" + org + "/" + user)[:40]
}

// Ledger counts invitations against the daily quota.
type Ledger struct {
	// Client writes ImportLedgers.
	Client client.Client
	// Reader reads them past any cache.
	Reader client.Reader
}

// Take counts one invitation by user in org, or refuses it with a *QuotaError. The count is
// written with the resourceVersion it was read at, so of concurrent takers each sees the
// others' counts: they cannot overshoot together.
func (l Ledger) Take(ctx context.Context, org *rosterv1.Organization, user string, now time.Time) error {
	quota, limited := InvitationQuota(org)
	if !limited {
		return nil
	}
	name := ImportLedgerName(org.Namespace, org.Name, user)
	for range 20 {
		ledger := &rosterv1.ImportLedger{}
		err := l.Reader.Get(ctx, client.ObjectKey{Name: name}, ledger)
		if client.IgnoreNotFound(err) != nil {
			return err
		}
		exists := err == nil
		hours, used, next, ok := QuotaUse(ledger.Spec.Hours, quota, now)
		if !ok {
			return &QuotaError{User: user, Organization: org, Used: used, Quota: quota, Next: next}
		}
		ledger.Spec = rosterv1.ImportLedgerSpec{Namespace: org.Namespace, Organization: org.Name, User: user, Hours: hours}
		if exists {
			err = l.Client.Update(ctx, ledger)
		} else {
			ledger.Name = name
			ledger.Labels = map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster}
			err = l.Client.Create(ctx, ledger)
		}
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			continue // someone counted in between; count again on top of theirs
		}
		return err
	}
	return errors.New("the invitation count kept changing under concurrent creates; try again")
}
