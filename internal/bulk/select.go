package bulk

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// listPageSize keeps each list response small in a large organization; the continue token
// still gives one consistent snapshot across the pages.
const listPageSize = 500

// Selector chooses the objects a bulk change applies to. Every criterion given must hold,
// so adding one only ever narrows the choice; at least one must be given, so that a
// forgotten flag cannot change a whole organization.
type Selector struct {
	// Names are object names. Each one that does not exist or does not meet the other
	// criteria is reported as Failed, because someone asked for it by name.
	Names []string
	// LabelSelector is a label selector in kubectl's syntax, such as
	// org.roster.dev/phase=Pending.
	LabelSelector string
	// Department chooses by the current spec.department, ignoring case. Unlike the
	// org.roster.dev/department label it needs no controller to have run, and it matches
	// the department as people typed it.
	Department string
}

func (s Selector) empty() bool {
	return len(s.Names) == 0 && strings.TrimSpace(s.LabelSelector) == "" && strings.TrimSpace(s.Department) == ""
}

// errNothingChosen keeps a bulk change from applying to everything by accident.
var errNothingChosen = errors.New("choose the objects by name, label selector or department")

// choose returns the objects of type T in ns that sel and org choose, sorted by name, and a
// Failed result for each name asked for that could not be chosen. An empty org chooses
// from every organization in the namespace.
func choose[T any, P interface {
	*T
	client.Object
}](ctx context.Context, c client.Client, ns, org string, sel Selector,
	list func(context.Context, client.Client, string, labels.Selector, func(P)) error,
	orgOf func(P) string, also func(P) string,
) ([]P, []ObjectResult, error) {
	if sel.empty() {
		return nil, nil, errNothingChosen
	}
	ls := labels.Everything()
	if s := strings.TrimSpace(sel.LabelSelector); s != "" {
		var err error
		if ls, err = labels.Parse(s); err != nil {
			return nil, nil, fmt.Errorf("label selector %q: %w", s, err)
		}
	}
	if org != "" {
		if err := checkOrganization(ctx, c, ns, org); err != nil {
			return nil, nil, err
		}
	}
	whyNot := func(o P) string {
		switch objOrg := orgOf(o); {
		case org != "" && objOrg != org:
			return fmt.Sprintf("belongs to organization %q, not %q", objOrg, org)
		case !ls.Matches(labels.Set(o.GetLabels())):
			return fmt.Sprintf("does not match the label selector %q", ls.String())
		}
		return also(o)
	}

	var chosen []P
	var notChosen []ObjectResult
	if len(sel.Names) == 0 {
		err := list(ctx, c, ns, ls, func(o P) {
			if whyNot(o) == "" {
				chosen = append(chosen, o)
			}
		})
		if err != nil {
			return nil, nil, err
		}
	} else {
		names := slices.Clone(sel.Names)
		slices.Sort(names)
		for _, name := range slices.Compact(names) {
			o := P(new(T))
			err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, o)
			switch {
			case apierrors.IsNotFound(err):
				notChosen = append(notChosen, ObjectResult{Name: name, Outcome: Failed, Message: "not found"})
			case err != nil:
				notChosen = append(notChosen, ObjectResult{Name: name, Outcome: Failed, Message: err.Error()})
			case whyNot(o) != "":
				notChosen = append(notChosen, ObjectResult{Name: name, Outcome: Failed, Message: "not changed: it " + whyNot(o)})
			default:
				chosen = append(chosen, o)
			}
		}
	}
	slices.SortFunc(chosen, func(a, b P) int { return strings.Compare(a.GetName(), b.GetName()) })
	return chosen, notChosen, nil
}

func chooseMembers(ctx context.Context, c client.Client, ns, org string, sel Selector) ([]*rosterv1.Member, []ObjectResult, error) {
	return choose(ctx, c, ns, org, sel, listMembers,
		func(m *rosterv1.Member) string { return m.Spec.OrganizationRef.Name },
		func(m *rosterv1.Member) string { return otherDepartment(sel, m.Spec.Department) })
}

func chooseInvitations(ctx context.Context, c client.Client, ns, org string, sel Selector) ([]*rosterv1.Invitation, []ObjectResult, error) {
	return choose(ctx, c, ns, org, sel, listInvitations,
		func(i *rosterv1.Invitation) string { return i.Spec.OrganizationRef.Name },
		func(i *rosterv1.Invitation) string { return otherDepartment(sel, i.Spec.Department) })
}

// otherDepartment says why an object in department is not chosen by sel's department, or
// "" when it is.
func otherDepartment(sel Selector, department string) string {
	want := strings.TrimSpace(sel.Department)
	if want != "" && !strings.EqualFold(department, want) {
		return fmt.Sprintf("is in department %q, not %q", department, want)
	}
	return ""
}

// listMembers calls each for every Member in ns that ls matches (nil matches all); each may
// keep the Member it is given.
func listMembers(ctx context.Context, c client.Client, ns string, ls labels.Selector, each func(*rosterv1.Member)) error {
	list := &rosterv1.MemberList{}
	return forEachPage(ctx, c, ns, ls, list, func() {
		for i := range list.Items {
			// A copy, because the next page is decoded into the same items.
			each(list.Items[i].DeepCopy())
		}
	})
}

// listExternalUsers calls each for every ExternalUser in ns that ls matches (nil matches
// all); each may keep the ExternalUser it is given.
func listExternalUsers(ctx context.Context, c client.Client, ns string, ls labels.Selector, each func(*rosterv1.ExternalUser)) error {
	list := &rosterv1.ExternalUserList{}
	return forEachPage(ctx, c, ns, ls, list, func() {
		for i := range list.Items {
			// A copy, because the next page is decoded into the same items.
			each(list.Items[i].DeepCopy())
		}
	})
}

// listInvitations calls each for every Invitation in ns that ls matches (nil matches all);
// each may keep the Invitation it is given.
func listInvitations(ctx context.Context, c client.Client, ns string, ls labels.Selector, each func(*rosterv1.Invitation)) error {
	list := &rosterv1.InvitationList{}
	return forEachPage(ctx, c, ns, ls, list, func() {
		for i := range list.Items {
			// A copy, because the next page is decoded into the same items.
			each(list.Items[i].DeepCopy())
		}
	})
}

func forEachPage(ctx context.Context, c client.Client, ns string, ls labels.Selector, list client.ObjectList, page func()) error {
	opts := []client.ListOption{client.InNamespace(ns), client.Limit(listPageSize)}
	if ls != nil && !ls.Empty() {
		opts = append(opts, client.MatchingLabelsSelector{Selector: ls})
	}
	cont := ""
	for {
		if err := c.List(ctx, list, append(opts, client.Continue(cont))...); err != nil {
			return err
		}
		page()
		if cont = list.GetContinue(); cont == "" {
			return nil
		}
	}
}
