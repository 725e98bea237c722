package bulk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// WorkChanges are the work details a bulk edit sets (F12). A nil field is left as each
// member has it; a pointer to "" clears it.
type WorkChanges struct {
	// Department to move the members to.
	Department *string
	// Position to give the members.
	Position *string
	// Location to give the members.
	Location *string
}

// Edit sets the given work details on every Member of org in ns that sel chooses. Each
// member gets a merge patch of only the fields that differ, so details an admin did not
// ask to change, and changes made meanwhile to other fields, are kept. An empty org edits
// members of every organization in the namespace.
func Edit(ctx context.Context, c client.Client, ns, org string, sel Selector, set WorkChanges) (EditResult, error) {
	fields := []struct {
		name string
		want *string
		have func(*rosterv1.Member) string
	}{
		{"department", set.Department, func(m *rosterv1.Member) string { return m.Spec.Department }},
		{"position", set.Position, func(m *rosterv1.Member) string { return m.Spec.Position }},
		{"location", set.Location, func(m *rosterv1.Member) string { return m.Spec.Location }},
	}
	given := 0
	for _, f := range fields {
		if f.want == nil {
			continue
		}
		given++
		if n := utf8.RuneCountInString(strings.TrimSpace(*f.want)); n > 128 {
			return EditResult{}, fmt.Errorf("%s is %d characters long, at most 128 are allowed", f.name, n)
		}
	}
	if given == 0 {
		return EditResult{}, errors.New("nothing to change: give a department, position or location")
	}
	return changeMembers(ctx, c, ns, org, sel, func(m *rosterv1.Member) (map[string]any, string) {
		spec := map[string]any{}
		var changes []string
		for _, f := range fields {
			if f.want == nil {
				continue
			}
			want, have := strings.TrimSpace(*f.want), f.have(m)
			if want == have {
				continue
			}
			spec[f.name] = want
			if want == "" {
				// null removes the field in a merge patch; "" would be stored as "".
				spec[f.name] = nil
			}
			changes = append(changes, fmt.Sprintf("%s %q → %q", f.name, have, want))
		}
		if len(changes) == 0 {
			return nil, "already has these details"
		}
		return spec, strings.Join(changes, ", ")
	})
}

// Approve lets in the Members that sel chooses by setting spec.approval to Approved (F9);
// it also re-approves rejected members.
func Approve(ctx context.Context, c client.Client, ns, org string, sel Selector) (EditResult, error) {
	return setMemberField(ctx, c, ns, org, sel, "approval", string(rosterv1.ApprovalApproved),
		func(m *rosterv1.Member) string { return string(m.Spec.Approval) })
}

// Reject keeps out the Members that sel chooses by setting spec.approval to Rejected.
func Reject(ctx context.Context, c client.Client, ns, org string, sel Selector) (EditResult, error) {
	return setMemberField(ctx, c, ns, org, sel, "approval", string(rosterv1.ApprovalRejected),
		func(m *rosterv1.Member) string { return string(m.Spec.Approval) })
}

// Restore brings back the terminated Members that sel chooses by setting spec.access to
// Active (F14).
func Restore(ctx context.Context, c client.Client, ns, org string, sel Selector) (EditResult, error) {
	return setMemberField(ctx, c, ns, org, sel, "access", string(rosterv1.AccessActive), access)
}

// Terminate removes the Members that sel chooses, keeping their records, by setting
// spec.access to Terminated.
func Terminate(ctx context.Context, c client.Client, ns, org string, sel Selector) (EditResult, error) {
	return setMemberField(ctx, c, ns, org, sel, "access", string(rosterv1.AccessTerminated), access)
}

// access reads an unset spec.access as Active, which is what the schema defaults it to.
func access(m *rosterv1.Member) string {
	if m.Spec.Access == "" {
		return string(rosterv1.AccessActive)
	}
	return string(m.Spec.Access)
}

func setMemberField(ctx context.Context, c client.Client, ns, org string, sel Selector, field, value string,
	have func(*rosterv1.Member) string) (EditResult, error) {
	return changeMembers(ctx, c, ns, org, sel, func(m *rosterv1.Member) (map[string]any, string) {
		if have(m) == value {
			return nil, fmt.Sprintf("%s is already %s", field, value)
		}
		return map[string]any{field: value}, fmt.Sprintf("%s %q → %q", field, have(m), value)
	})
}

// changeMembers merge-patches spec of each chosen member with what change returns for it,
// along with what the patch does; an empty patch leaves the member Unchanged, and the
// message then says why. The patch carries no resourceVersion: each
// sets fields to fixed values, so applying it over someone else's change is still right.
func changeMembers(ctx context.Context, c client.Client, ns, org string, sel Selector,
	change func(*rosterv1.Member) (map[string]any, string)) (EditResult, error) {
	members, res, err := chooseMembers(ctx, c, ns, org, sel)
	if err != nil {
		return EditResult{}, err
	}
	return patchSpecs(ctx, c, members, res, change)
}

// patchSpecs merge-patches spec of each object with what change returns for it and adds
// one result per object to res.
func patchSpecs[P client.Object](ctx context.Context, c client.Client, objs []P, res []ObjectResult,
	change func(P) (map[string]any, string)) (EditResult, error) {
	for _, o := range objs {
		if err := ctx.Err(); err != nil {
			return sorted(res), err
		}
		spec, msg := change(o)
		if len(spec) == 0 {
			res = append(res, ObjectResult{Name: o.GetName(), Outcome: Unchanged, Message: msg})
			continue
		}
		body, err := json.Marshal(map[string]any{"spec": spec})
		if err != nil {
			return sorted(res), err
		}
		if err := c.Patch(ctx, o, client.RawPatch(types.MergePatchType, body)); err != nil {
			res = append(res, ObjectResult{Name: o.GetName(), Outcome: Failed, Message: err.Error()})
			continue
		}
		res = append(res, ObjectResult{Name: o.GetName(), Outcome: Changed, Message: msg})
	}
	return sorted(res), nil
}

// Resend sends again the Invitations that sel chooses, with a new link and expiry, by
// raising spec.resendRequests by one. The patch carries the resourceVersion it read and is
// retried on a conflict, so two admins resending at once raise it by two, not one, and
// each one's resend happens. Accepted invitations are left Unchanged: the person is in.
func Resend(ctx context.Context, c client.Client, ns, org string, sel Selector) (EditResult, error) {
	invitations, res, err := chooseInvitations(ctx, c, ns, org, sel)
	if err != nil {
		return EditResult{}, err
	}
	for _, inv := range invitations {
		if err := ctx.Err(); err != nil {
			return sorted(res), err
		}
		res = append(res, resendOne(ctx, c, inv))
	}
	return sorted(res), nil
}

func resendOne(ctx context.Context, c client.Client, inv *rosterv1.Invitation) ObjectResult {
	res := ObjectResult{Name: inv.Name}
	first := true
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			// Into a new object: decoding into the old one would keep fields the server
			// has since dropped.
			fresh := &rosterv1.Invitation{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(inv), fresh); err != nil {
				return err
			}
			inv = fresh
		}
		first = false
		if inv.Status.Phase == rosterv1.InvitationAccepted {
			res.Outcome, res.Message = Unchanged, "already accepted; there is nothing to resend"
			return nil
		}
		before := inv.DeepCopy()
		inv.Spec.ResendRequests++
		res.Outcome = Changed
		res.Message = fmt.Sprintf("resendRequests %d → %d", before.Spec.ResendRequests, inv.Spec.ResendRequests)
		return c.Patch(ctx, inv, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		res.Outcome, res.Message = Failed, err.Error()
	}
	return res
}

func sorted(res []ObjectResult) EditResult {
	slices.SortStableFunc(res, func(a, b ObjectResult) int { return strings.Compare(a.Name, b.Name) })
	return EditResult{Objects: res}
}
