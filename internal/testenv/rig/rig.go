// Package rig runs Roster as it ships on a local control plane: a real kube-apiserver and
// etcd (from hack/setup-envtest.sh, named by KUBEBUILDER_ASSETS) with Roster's CRDs and
// webhook configurations, and the manager and portal binaries, built from cmd/, as separate
// processes that can be killed and started again. The fault tests (test/faults) and the
// benchmark (hack/bench) share it.
//
// Unlike its parent package testenv it does not depend on ginkgo, so a plain Go test or a
// main package can use it.
package rig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// Root is the repository's root directory, wherever the caller runs from.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Scheme knows the Kubernetes kinds and Roster's. (operator.NewScheme is the same; this
// package does not import operator, so that the suites of the packages operator assembles
// can use it.)
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(rosterv1.AddToScheme(s))
	return s
}

// Environment describes a control plane with Roster's CRDs installed, and with its webhook
// configurations installed and pointed at a local webhook server when webhooks is true.
func Environment(webhooks bool) *envtest.Environment {
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(Root(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if webhooks {
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: []string{filepath.Join(Root(), "config", "webhook")}}
	}
	return env
}

// Build builds the commands ./cmd/<name> as they ship into dir, in one go, and returns the
// binaries' paths.
func Build(dir string, names ...string) ([]string, error) {
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	var bins []string
	for _, n := range names {
		args = append(args, "./cmd/"+n)
		bins = append(bins, filepath.Join(dir, n))
	}
	build := exec.Command("go", args...)
	build.Dir = Root()
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s: %v\n%s", strings.Join(names, ", "), err, out)
	}
	return bins, nil
}

// Rig is a running control plane with Roster's CRDs and webhook configurations; the webhook
// configurations point at Env.WebhookInstallOptions' local host, port and certificates, where
// a manager started with ManagerArgs serves them.
type Rig struct {
	Env *envtest.Environment
	// Config is a cluster admin's.
	Config *rest.Config
	// Admin is a client with Config that knows Roster's kinds.
	Admin client.Client
	// Dir holds the API server's certificates and the kubeconfigs AddUser writes.
	Dir string
}

// auditWrites is an audit policy that logs each write's metadata once, when it completes.
const auditWrites = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
`

// Start starts a control plane whose files live under dir. With RIG_AUDIT_LOG set, its API
// server logs every write there.
func Start(dir string) (*Rig, error) {
	env := Environment(true)
	// The API server's certificates live in a directory of ours. envtest deletes a directory
	// it made itself when the API server stops, and a restart would then come up with a new
	// serving CA that the manager's kubeconfig does not trust.
	certDir := filepath.Join(dir, "apiserver")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certDir}
	if path := os.Getenv("RIG_AUDIT_LOG"); path != "" {
		// Who wrote what: every write as one JSON line, for finding where writes come from.
		policy := filepath.Join(dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditWrites), 0o600); err != nil {
			return nil, err
		}
		args := env.ControlPlane.APIServer.Configure()
		args.Set("audit-policy-file", policy)
		args.Set("audit-log-path", path)
	}
	// kube-apiserver's graceful shutdown waits for the requests in flight, the manager's
	// watches among them, longer than envtest's 20 s; after this long envtest kills it. A
	// test stopping the API server then sees one that crashed, the harder case.
	env.ControlPlaneStopTimeout = 3 * time.Second
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	r := &Rig{Env: env, Config: cfg, Dir: dir}
	if r.Admin, err = client.New(cfg, client.Options{Scheme: Scheme()}); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return r, nil
}

// Stop stops the control plane.
func (r *Rig) Stop() error { return r.Env.Stop() }

// As returns a client that impersonates user, with cluster-admin rights (system:masters) so
// that only Roster's webhooks decide what they may do.
func (r *Rig) As(user string) (client.Client, error) {
	c := rest.CopyConfig(r.Config)
	c.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:masters"}}
	return client.New(c, client.Options{Scheme: Scheme()})
}

// AddUser provisions user (with groups) and writes a kubeconfig for them to Dir; it returns
// their rest.Config and the kubeconfig's path.
func (r *Rig) AddUser(user string, groups ...string) (*rest.Config, string, error) {
	u, err := r.Env.AddUser(envtest.User{Name: user, Groups: groups}, r.Config)
	if err != nil {
		return nil, "", err
	}
	data, err := u.KubeConfig()
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(r.Dir, strings.NewReplacer(":", "_", "/", "_", "@", "_").Replace(user)+".kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return nil, "", err
	}
	return u.Config(), path, nil
}

// GrantManagerRole binds the generated manager ClusterRole (config/rbac/role.yaml) to user,
// as the manager's ServiceAccount is bound in a cluster.
func (r *Rig) GrantManagerRole(ctx context.Context, user string) error {
	raw, err := os.ReadFile(filepath.Join(Root(), "config", "rbac", "role.yaml"))
	if err != nil {
		return err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(raw, role); err != nil {
		return err
	}
	if err := r.Admin.Create(ctx, role); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	return client.IgnoreAlreadyExists(r.Admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name + "-" + sanitize(user)},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}))
}

// GrantPortalRoles applies config/portal/rbac.yaml with its bindings' subjects replaced by
// user; the portal's own namespace (roster-system there) must exist.
func GrantPortalRoles(ctx context.Context, admin client.Client, user string) error {
	data, err := os.ReadFile(filepath.Join(Root(), "config", "portal", "rbac.yaml"))
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if len(u.Object) == 0 {
			continue
		}
		if strings.HasSuffix(u.GetKind(), "Binding") {
			_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}}, "subjects")
		}
		if err := admin.Create(ctx, u); client.IgnoreAlreadyExists(err) != nil {
			return err
		}
	}
}

func sanitize(s string) string {
	return strings.Trim(strings.NewReplacer(":", "-", "/", "-", "@", "-", "_", "-").Replace(strings.ToLower(s)), "-.")
}

// ManagerOptions are the manager flags that differ between callers.
type ManagerOptions struct {
	// TrustedUser is the manager's own identity (--trusted-user).
	TrustedUser string
	// PortalUser is the portal's identity (--portal-user); the binary's default when empty.
	PortalUser string
	// PortalURL is where links point (--portal-url).
	PortalURL string
	// NoWebhooks runs the manager without the admission webhooks; the API server then
	// refuses writes to Roster's objects unless another manager serves them.
	NoWebhooks bool
	// Shard is --shard; empty for all organizations.
	Shard string
	// Extra are more flags.
	Extra []string
}

// ManagerArgs are the manager's flags on this control plane: webhooks served where the
// webhook configurations point, metrics off, readiness on 127.0.0.1:probePort, and
// notifications allowed to loopback, where the mail sinks listen.
func (r *Rig) ManagerArgs(o ManagerOptions, probePort int) []string {
	wh := r.Env.WebhookInstallOptions
	args := []string{
		"--trusted-user=" + o.TrustedUser,
		"--webhooks=" + strconv.FormatBool(!o.NoWebhooks),
		"--webhook-host=" + wh.LocalServingHost,
		"--webhook-port=" + strconv.Itoa(wh.LocalServingPort),
		"--webhook-cert-dir=" + wh.LocalServingCertDir,
		"--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort),
		"--notify-allow-cidr=127.0.0.0/8",
		"--portal-url=" + o.PortalURL,
	}
	if o.PortalUser != "" {
		args = append(args, "--portal-user="+o.PortalUser)
	}
	if o.Shard != "" {
		args = append(args, "--shard="+o.Shard)
	}
	return append(args, o.Extra...)
}

// Process is a binary running as its own process, as in a pod; every start appends to one
// log, so a failure shows what each incarnation did.
type Process struct {
	// Name heads each start in the log.
	Name string
	Bin  string
	Args []string
	// Env is added to this process's environment (KUBECONFIG, GODEBUG, ...).
	Env     []string
	LogPath string
	// Ready reports whether a started process serves; Start waits up to a minute for it.
	Ready func(ctx context.Context) error

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
}

// Start runs a new process and waits until Ready says it serves.
func (p *Process) Start() error {
	logFile, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p.mu.Lock()
	p.starts++
	fmt.Fprintf(logFile, "\n===== rig: %s start %d =====\n", p.Name, p.starts)
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
	return p.waitReady(done)
}

func (p *Process) waitReady(done chan struct{}) error {
	if p.Ready == nil {
		return nil
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("%s exited while starting:\n%s", p.Name, p.LogTail(30))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := p.Ready(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not become ready: %w\n%s", p.Name, err, p.LogTail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill ends the process with SIGKILL, as the kernel's OOM killer or a node failure would: no
// shutdown, no flushing of anything.
func (p *Process) Kill() { p.signal(syscall.SIGKILL, 0) }

// Stop asks the process to shut down (SIGTERM), as a pod's deletion does, and kills it when
// it has not ended after grace.
func (p *Process) Stop(grace time.Duration) { p.signal(syscall.SIGTERM, grace) }

func (p *Process) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if sig == syscall.SIGKILL {
		<-done
		return
	}
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// Exited reports whether the current process has ended (or never started).
func (p *Process) Exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Pid is the current process's id.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// LogTail returns the log's last n lines, each cut at 400 characters.
func (p *Process) LogTail(n int) string {
	data, _ := os.ReadFile(p.LogPath)
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

// FreePort returns a loopback port that nothing listens on at the moment.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Readyz reports whether http://127.0.0.1:port/readyz answers 200.
func Readyz(ctx context.Context, port int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/readyz", port), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s", resp.Status)
	}
	return nil
}

// CreateRetrying creates obj, retrying for up to a minute what a client would retry: a
// webhook that cannot be reached for a moment, an API server that is busy or restarting.
// An object that already exists counts as created.
func CreateRetrying(ctx context.Context, c client.Client, obj client.Object) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := c.Create(ctx, obj.DeepCopyObject().(client.Object))
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		if !Transient(err) || time.Now().After(deadline) {
			return fmt.Errorf("create %s: %w", obj.GetName(), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Transient reports whether err is worth retrying: the API server busy, restarting or
// unreachable, or a webhook it could not reach.
func Transient(err error) bool {
	return apierrors.IsInternalError(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsTooManyRequests(err) || apierrors.IsServiceUnavailable(err) || IsConnection(err)
}

// IsConnection reports whether err is a failure to reach the server.
func IsConnection(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "EOF")
}
