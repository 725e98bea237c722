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
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/notify/mailsink"
	"github.com/roster-dev/roster/internal/operator"
	"github.com/roster-dev/roster/internal/testenv"
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
	env        *envtest.Environment
	cluster    client.Client // a cluster admin who is nobody in any organization
	admin      client.Client // alice, a Super Admin of every organization the tests make
	asManager  client.Client // Roster's trusted identity, for what only Roster creates
	mgr        *managerProcess
	tmpDir     string
	managerBin string
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
			mgr.kill()
			fmt.Fprintln(os.Stderr, mgr.logTail(40))
		}
		if env != nil {
			_ = env.Stop()
		}
		return 1
	}
	code := m.Run()
	portal.kill()
	mgr.kill()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "faults: stop the control plane:", err)
	}
	return code
}

func setup() error {
	// The manager as it ships: the binary, not the package linked into the test.
	managerBin = filepath.Join(tmpDir, "manager")
	build := exec.Command("go", "build", "-o", managerBin, "./cmd/manager")
	build.Dir = testenv.Root()
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the manager: %v\n%s", err, out)
	}

	env = testenv.New(true)
	// The API server's certificates live in a directory of ours. envtest deletes a directory
	// it made itself when the API server stops, and the outage test's restart would then
	// come up with a new serving CA that the manager's kubeconfig does not trust.
	certDir := filepath.Join(tmpDir, "apiserver")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		return err
	}
	env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certDir}
	// kube-apiserver's graceful shutdown waits for the requests in flight, the manager's
	// watches among them, longer than envtest's 20 s; after this long envtest kills it. The
	// outage test then sees an API server that crashed, the harder case.
	env.ControlPlaneStopTimeout = 3 * time.Second
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("start the control plane: %w", err)
	}
	if cluster, err = client.New(cfg, client.Options{Scheme: operator.NewScheme()}); err != nil {
		return err
	}
	admin, err = asUser(cfg, adminUser)
	if err != nil {
		return err
	}

	// The manager runs with exactly the generated ClusterRole, as its ServiceAccount does.
	if err := grantManagerRole(context.Background()); err != nil {
		return err
	}
	user, err := env.AddUser(envtest.User{Name: managerUser}, cfg)
	if err != nil {
		return err
	}
	if asManager, err = client.New(user.Config(), client.Options{Scheme: operator.NewScheme()}); err != nil {
		return err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	kubeconfigPath := filepath.Join(tmpDir, "manager.kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return err
	}
	mgr = &managerProcess{kubeconfig: kubeconfigPath, logPath: filepath.Join(tmpDir, "manager.log")}
	return mgr.start()
}

func asUser(cfg *rest.Config, name string) (client.Client, error) {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: name, Groups: []string{"system:masters"}}
	return client.New(c, client.Options{Scheme: operator.NewScheme()})
}

// grantManagerRole binds the generated manager ClusterRole (config/rbac/role.yaml) to the
// manager's user.
func grantManagerRole(ctx context.Context) error {
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "rbac", "role.yaml"))
	if err != nil {
		return err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(raw, role); err != nil {
		return err
	}
	if err := cluster.Create(ctx, role); err != nil {
		return err
	}
	return cluster.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: managerUser}},
	})
}

// managerProcess is the manager binary running as its own process, as in a pod; every start
// appends to one log, so a failing test shows what each incarnation did.
type managerProcess struct {
	kubeconfig, logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs a new manager process and waits until its webhooks answer the API server.
func (p *managerProcess) start() error {
	probe, err := freePort()
	if err != nil {
		return err
	}
	wh := env.WebhookInstallOptions
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(managerBin,
		"--trusted-user="+managerUser,
		"--webhooks=true",
		"--webhook-host="+wh.LocalServingHost,
		"--webhook-port="+strconv.Itoa(wh.LocalServingPort),
		"--webhook-cert-dir="+wh.LocalServingCertDir,
		"--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probe),
		"--notify-allow-cidr=127.0.0.0/8",
		"--portal-url="+portalURL,
	)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+p.kubeconfig)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p.mu.Lock()
	p.starts++
	fmt.Fprintf(logFile, "\n===== faults: manager start %d =====\n", p.starts)
	p.mu.Unlock()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return p.waitReady(probe, done)
}

// waitReady waits for the readiness probe, then for the API server to reach the webhooks: a
// dry-run create that the webhooks admit.
func (p *managerProcess) waitReady(probe int, done chan struct{}) error {
	deadline := time.Now().Add(60 * time.Second)
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", probe)
	for {
		select {
		case <-done:
			return fmt.Errorf("the manager exited while starting:\n%s", p.logTail(30))
		default:
		}
		err := readyz(url)
		if err == nil {
			err = dryRunOrganization()
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager did not become ready: %w\n%s", err, p.logTail(30))
		}
		time.Sleep(poll)
	}
}

func readyz(url string) error {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s", resp.Status)
	}
	return nil
}

func dryRunOrganization() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return admin.Create(ctx, &rosterv1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: "warmup", Namespace: "default"},
		Spec:       rosterv1.OrganizationSpec{DisplayName: "warmup", Admins: []rosterv1.Subject{{Kind: "User", Name: adminUser}}},
	}, client.DryRunAll)
}

// kill ends the running manager with SIGKILL, as the kernel's OOM killer or a node failure
// would: no shutdown, no flushing of anything.
func (p *managerProcess) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// exited reports whether the current manager process has ended.
func (p *managerProcess) exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

func (p *managerProcess) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

func (p *managerProcess) logTail(n int) string {
	data, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 400 { // stack traces say little here; the message and error come first
			lines[i] = l[:400] + "..."
		}
	}
	return strings.Join(lines, "\n")
}

// ensureManager starts a manager when a test finds none (an earlier test failed while it was
// down), and shows the manager's log when the test fails.
func ensureManager(t *testing.T) {
	t.Helper()
	if mgr.exited() {
		t.Log("the manager was not running; starting one")
		if err := mgr.start(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			// The whole log outlives the test's temporary directory, for a closer look.
			kept := filepath.Join(os.TempDir(), "roster-faults-manager.log")
			if data, err := os.ReadFile(mgr.logPath); err == nil && os.WriteFile(kept, data, 0o600) == nil {
				t.Logf("the manager's whole log: %s", kept)
			}
			t.Logf("manager log (last lines):\n%s", mgr.logTail(25))
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

// createRetrying creates obj, retrying what a client would retry: a webhook that cannot be
// reached for a moment, an API server that is busy or restarting.
func createRetrying(ctx context.Context, c client.Client, obj client.Object) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := c.Create(ctx, obj.DeepCopyObject().(client.Object))
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		transient := apierrors.IsInternalError(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
			apierrors.IsTooManyRequests(err) || apierrors.IsServiceUnavailable(err) || isConnection(err)
		if !transient || time.Now().After(deadline) {
			return fmt.Errorf("create %s: %w", obj.GetName(), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func isConnection(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "EOF")
}

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
