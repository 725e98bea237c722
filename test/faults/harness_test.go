// Package faults holds Roster's fault tests (issue 12): the manager binary, built as it ships,
// runs as a separate process against a real kube-apiserver and etcd and a loopback SMTP
// server, and the tests kill it, stop the API server, take the SMTP server down and write
// concurrently with the controllers, then check that nothing was lost.
//
// The short versions run in `make test`; `make chaos` sets ROSTER_CHAOS=1 for the long ones
// the issue asks for (500 invitations and 10 kills, a 20 s API server outage, a 30 s SMTP
// outage).
package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/notify/mailsink"
	"github.com/roster-dev/roster/internal/operator"
	"github.com/roster-dev/roster/internal/testenv/rig"
)

const (
	managerUser = "roster-manager"
	adminUser   = "alice@acme.example"
	portalURL   = "http://127.0.0.1:1" // links are only looked up, never opened
	poll        = 100 * time.Millisecond
)

// long is set by `make chaos`: the full sizes instead of the short ones `make test` runs.
var long = os.Getenv("ROSTER_CHAOS") != ""

var (
	plane     *rig.Rig
	env       *envtest.Environment
	cluster   client.Client // a cluster admin who is nobody in any organization
	admin     client.Client // alice, a Super Admin of every organization the tests make
	asManager client.Client // Roster's trusted identity, for what only Roster creates
	mgr       *rig.Process
	tmpDir    string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "faults: KUBEBUILDER_ASSETS is not set; run `make test` or `make chaos`, or set it to $(hack/setup-envtest.sh)")
		return 1
	}
	var err error
	if tmpDir, err = os.MkdirTemp("", "roster-faults-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmpDir)
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		if mgr != nil {
			mgr.Kill()
			fmt.Fprintln(os.Stderr, mgr.LogTail(40))
		}
		if plane != nil {
			_ = plane.Stop()
		}
		return 1
	}
	code := m.Run()
	if portal != nil {
		portal.Kill()
	}
	mgr.Kill()
	if err := plane.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "faults: stop the control plane:", err)
	}
	return code
}

func setup() error {
	// The manager as it ships: the binary, not the package linked into the test.
	bins, err := rig.Build(tmpDir, "manager")
	if err != nil {
		return err
	}
	managerBin := bins[0]
	if plane, err = rig.Start(tmpDir); err != nil {
		return err
	}
	env, cluster = plane.Env, plane.Admin
	if admin, err = plane.As(adminUser); err != nil {
		return err
	}

	// The manager runs with exactly the generated ClusterRole, as its ServiceAccount does.
	if err := plane.GrantManagerRole(context.Background(), managerUser); err != nil {
		return err
	}
	cfg, kubeconfig, err := plane.AddUser(managerUser)
	if err != nil {
		return err
	}
	if asManager, err = client.New(cfg, client.Options{Scheme: operator.NewScheme()}); err != nil {
		return err
	}
	probe, err := rig.FreePort()
	if err != nil {
		return err
	}
	mgr = &rig.Process{
		Name:    "manager",
		Bin:     managerBin,
		Args:    plane.ManagerArgs(rig.ManagerOptions{TrustedUser: managerUser, PortalURL: portalURL}, probe),
		Env:     []string{"KUBECONFIG=" + kubeconfig},
		LogPath: filepath.Join(tmpDir, "manager.log"),
		// Ready once the API server reaches the webhooks: a dry-run create that they admit.
		Ready: func(ctx context.Context) error {
			if err := rig.Readyz(ctx, probe); err != nil {
				return err
			}
			return dryRunOrganization(ctx)
		},
	}
	return mgr.Start()
}

func dryRunOrganization(ctx context.Context) error {
	return admin.Create(ctx, &rosterv1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: "warmup", Namespace: "default"},
		Spec:       rosterv1.OrganizationSpec{DisplayName: "warmup", Admins: []rosterv1.Subject{{Kind: "User", Name: adminUser}}},
	}, client.DryRunAll)
}

// ensureManager starts a manager when a test finds none (an earlier test failed while it was
// down), and shows the manager's log when the test fails.
func ensureManager(t *testing.T) {
	t.Helper()
	if mgr.Exited() {
		t.Log("the manager was not running; starting one")
		if err := mgr.Start(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			// The whole log outlives the test's temporary directory, for a closer look.
			kept := filepath.Join(os.TempDir(), "roster-faults-manager.log")
			if data, err := os.ReadFile(mgr.LogPath); err == nil && os.WriteFile(kept, data, 0o600) == nil {
				t.Logf("the manager's whole log: %s", kept)
			}
			t.Logf("manager log (last lines):\n%s", mgr.LogTail(25))
		}
	})
}

// org is one test's organization: its namespace, and the SMTP server its email goes to.
type org struct {
	ns   string
	sink *mailsink.Server
}

// newOrg makes a namespace, a mail sink on loopback and an Organization whose email goes
// there, changed by opts, and waits until the Organization is Ready.
func newOrg(t *testing.T, ctx context.Context, prefix string, opts ...func(*rosterv1.Organization)) *org {
	t.Helper()
	sink, err := mailsink.Start(mailsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	must(t, cluster.Create(ctx, ns))
	t.Cleanup(func() { _ = cluster.Delete(context.Background(), ns) })
	must(t, cluster.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "smtp", Namespace: ns.Name, Labels: map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster}},
		StringData: map[string]string{"host": sink.Host(), "port": strconv.Itoa(sink.Port()), "tls": "none"},
	}))
	o := &rosterv1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns.Name},
		Spec: rosterv1.OrganizationSpec{
			DisplayName: "Acme",
			Admins:      []rosterv1.Subject{{Kind: "User", Name: adminUser}},
			// The Free plan allows one admin 100 invitations a day; the long runs make 500.
			Plan: rosterv1.PlanPaid,
			Notifications: rosterv1.Notifications{
				Email: &rosterv1.EmailNotifications{SMTPSecretRef: rosterv1.LocalObjectReference{Name: "smtp"}, From: "Acme <people@acme.example>"},
			},
		},
	}
	for _, opt := range opts {
		opt(o)
	}
	must(t, createRetrying(ctx, admin, o))
	waitFor(t, ctx, time.Minute, "organization Ready", func() error {
		if err := cluster.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(o.Status.Conditions, rosterv1.ConditionReady) {
			return fmt.Errorf("not Ready: %v", o.Status.Conditions)
		}
		return nil
	})
	return &org{ns: ns.Name, sink: sink}
}

func (o *org) invitation(name string) *rosterv1.Invitation {
	return &rosterv1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.ns},
		Spec: rosterv1.InvitationSpec{
			OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
			Method:          rosterv1.InvitationMethodEmail,
			Invitee:         rosterv1.Invitee{Name: name, Email: email(name)},
		},
	}
}

func email(name string) string { return name + "@mail.example" }

// invite creates n invitations named prefix-0... as the admin, four at a time, as a GitOps
// sync or the plugin's import would.
func (o *org) invite(t *testing.T, ctx context.Context, prefix string, n int) []string {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	errs := make(chan error, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- createRetrying(ctx, admin, o.invitation(name))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	return names
}

func createRetrying(ctx context.Context, c client.Client, obj client.Object) error {
	return rig.CreateRetrying(ctx, c, obj)
}

func isConnection(err error) bool { return rig.IsConnection(err) }

// waitAllSent waits until every named invitation is Sent with its spec observed.
func (o *org) waitAllSent(t *testing.T, ctx context.Context, names []string, within time.Duration) {
	t.Helper()
	waitFor(t, ctx, within, fmt.Sprintf("%d invitations Sent", len(names)), func() error {
		list := &rosterv1.InvitationList{}
		if err := cluster.List(ctx, list, client.InNamespace(o.ns)); err != nil {
			return err
		}
		byName := map[string]*rosterv1.Invitation{}
		for i := range list.Items {
			byName[list.Items[i].Name] = &list.Items[i]
		}
		var notSent []string
		for _, n := range names {
			inv := byName[n]
			if inv == nil || inv.Status.Phase != rosterv1.InvitationSent || inv.Status.ObservedGeneration != inv.Generation {
				notSent = append(notSent, n)
			}
		}
		if len(notSent) > 0 {
			example := notSent[0]
			detail := "missing"
			if inv := byName[example]; inv != nil {
				detail = fmt.Sprintf("%s %v", inv.Status.Phase, inv.Status.Conditions)
			}
			return fmt.Errorf("%d not Sent, e.g. %s: %s", len(notSent), example, detail)
		}
		return nil
	})
}

// mailsTo returns the mails the sink received for addr, oldest first.
func mailsTo(sink *mailsink.Server, addr string) []mailsink.Mail {
	var out []mailsink.Mail
	for _, m := range sink.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, addr) {
				out = append(out, m)
			}
		}
	}
	return out
}

// byRecipient groups the sink's mails by envelope recipient, oldest first.
func byRecipient(sink *mailsink.Server) map[string][]mailsink.Mail {
	out := map[string][]mailsink.Mail{}
	for _, m := range sink.Messages() {
		for _, to := range m.To {
			out[strings.ToLower(to)] = append(out[strings.ToLower(to)], m)
		}
	}
	return out
}

// acceptor opens links as the sign-up pages do, reading straight from the API server.
func acceptor() *membership.Acceptor {
	return &membership.Acceptor{Client: cluster, APIReader: cluster, Clock: clock.RealClock{}}
}

// linkWorks checks that a mail carries a sign-up link and that the link opens its invitation.
func linkWorks(ctx context.Context, m mailsink.Mail) error {
	links := m.Links()
	if len(links) == 0 {
		return fmt.Errorf("mail %q to %v carries no link", m.Subject, m.To)
	}
	link := links[0]
	token := link[strings.LastIndex(link, "/")+1:]
	inv, err := acceptor().Lookup(ctx, token)
	if err != nil {
		return fmt.Errorf("link in mail %q to %v (%s, %s): %w", m.Subject, m.To, m.MessageID, m.Header.Get("Date"), err)
	}
	if !strings.EqualFold(inv.Invitation.Spec.Invitee.Email, m.To[0]) {
		return fmt.Errorf("link in mail to %v opens %s's invitation", m.To, inv.Invitation.Spec.Invitee.Email)
	}
	return nil
}

// idempotencyKeys lists the X-Roster-Idempotency-Key of each mail: which message of which
// object it is, independent of retries.
func idempotencyKeys(mails []mailsink.Mail) []string {
	out := make([]string, len(mails))
	for i, m := range mails {
		out[i] = m.Header.Get("X-Roster-Idempotency-Key")
	}
	return out
}

// waitFor polls check until it succeeds or within runs out; it fails the test with the last
// error. It is a deadline for a condition, not a measurement.
func waitFor(t *testing.T, ctx context.Context, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(poll)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// pick returns long's value under `make chaos` and short's otherwise.
func pick[T any](short, longValue T) T {
	if long {
		return longValue
	}
	return short
}
