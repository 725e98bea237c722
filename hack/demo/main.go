// Command demo runs Roster on a laptop: a local kube-apiserver and etcd (the same binaries
// the tests use), Roster's CRDs and webhooks, the manager, the portal (under the RBAC of
// config/portal), a loopback SMTP server that prints every mail it receives, and
// config/samples applied as the organization's admin. `make demo` runs it; it prints how to
// point kubectl at the control plane and a link to open in a browser.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/controllers"
	"github.com/roster-dev/roster/internal/notify"
	"github.com/roster-dev/roster/internal/notify/mailsink"
	"github.com/roster-dev/roster/internal/operator"
	"github.com/roster-dev/roster/internal/portal"
	"github.com/roster-dev/roster/internal/testenv"
	"github.com/roster-dev/roster/internal/testenv/rig"
)

const (
	namespace   = "demo"
	managerUser = "roster-manager"
	// portalUser is the portal's identity, bound to config/portal's roles.
	portalUser = "system:serviceaccount:roster-system:roster-portal"
	portalNS   = "roster-system"
	portalAddr = "127.0.0.1:8090"
	portalURL  = "http://" + portalAddr
	// The samples' Organization names this user as admin; the samples are applied as them.
	adminUser = "alice@acme.example"
)

func main() {
	root := flag.String("root", ".", "the repository root")
	quiet := flag.Bool("quiet", true, "log only errors from the manager")
	flag.Parse()
	level := zapcore.InfoLevel
	if *quiet {
		level = zapcore.ErrorLevel
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(!*quiet), zap.Level(level)))
	if err := run(*root); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(root string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	sink, err := mailsink.Start(mailsink.Options{OnMail: printMail})
	if err != nil {
		return fmt.Errorf("mail sink: %w", err)
	}
	defer sink.Close()

	env := testenv.New(true)
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("start the control plane (run hack/setup-envtest.sh and set KUBEBUILDER_ASSETS): %w", err)
	}
	defer func() { _ = env.Stop() }()

	kubeconfig, err := writeKubeconfig(env, cfg, filepath.Join(root, "bin", "demo", "kubeconfig"))
	if err != nil {
		return err
	}
	mgrUser, err := env.AddUser(envtest.User{Name: managerUser, Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		return err
	}
	wh := env.WebhookInstallOptions
	mgr, err := operator.NewManager(mgrUser.Config(), manager.Options{
		Metrics:       metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir}),
	})
	if err != nil {
		return err
	}
	if err := operator.Setup(ctx, mgr, operator.Options{
		Notifier:     notify.NewDispatcher(notify.DispatcherOptions{Logger: ctrl.Log.WithName("notify"), Allow: notify.LoopbackOnly}),
		PortalURL:    portalURL,
		TrustedUsers: []string{managerUser},
		PortalUsers:  []string{portalUser},
		Webhooks:     true,
	}); err != nil {
		return err
	}
	mgrErr := make(chan error, 1)
	go func() { mgrErr <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return errors.New("the manager's cache did not sync")
	}

	if err := startPortal(ctx, env, cfg); err != nil {
		return fmt.Errorf("portal: %w", err)
	}

	admin := rest.CopyConfig(cfg)
	admin.Impersonate = rest.ImpersonationConfig{UserName: adminUser, Groups: []string{"system:masters"}}
	c, err := client.New(admin, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		return err
	}
	if err := applySamples(ctx, c, filepath.Join(root, "config", "samples"), sink); err != nil {
		return err
	}

	door, publicLink := publicWays(ctx, c)
	fmt.Printf(`
Roster is running against a local control plane, with config/samples applied in namespace %q
as %s, an admin of the sample organization. Mails arrive at a loopback SMTP server
(%s) and are printed here; their links open the portal's pages.

  export KUBECONFIG=%s
  kubectl get roster -n %s
  kubectl describe inv bob -n %s
  kubectl patch inv bob -n %s --type=merge -p '{"spec":{"resendRequests":1}}'

Ctrl-C stops everything. Open the portal in a browser on this machine: the door number is %s,
and the organization's public link (with its QR code) is

  %s
`, namespace, adminUser, sink.Addr(), kubeconfig, namespace, namespace, namespace, door, publicLink)

	select {
	case <-ctx.Done():
		return nil
	case err := <-mgrErr:
		return err
	}
}

// applySamples creates every object in config/samples in the demo namespace. The SMTP
// Secret is pointed at the loopback sink, so invitations arrive here.
// createRetrying creates obj, retrying for a while as GitOps tools do: the webhooks refuse
// what names an Organization they have not seen yet.
func createRetrying(ctx context.Context, c client.Client, obj client.Object) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := c.Create(ctx, obj.DeepCopyObject().(client.Object))
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		if time.Now().After(deadline) || (!apierrors.IsInvalid(err) && !apierrors.IsForbidden(err)) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func applySamples(ctx context.Context, c client.Client, dir string, sink *mailsink.Server) error {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	// The Organization first, so what names it finds it.
	order := []string{"v1_secret_smtp.yaml", "org_v1alpha1_organization.yaml", "org_v1alpha1_member.yaml",
		"org_v1alpha1_invitation.yaml", "org_v1alpha1_externaluser.yaml", "org_v1alpha1_collaboration.yaml"}
	for _, f := range order {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			u.SetNamespace(namespace)
			if u.GetKind() == "Organization" {
				_ = unstructured.SetNestedField(u.Object, portalURL, "spec", "portalURL")
			}
			if u.GetKind() == "Secret" && u.GetName() == "acme-smtp" {
				_ = unstructured.SetNestedStringMap(u.Object, map[string]string{
					"host": sink.Host(), "port": strconv.Itoa(sink.Port()), "tls": "none",
				}, "stringData")
			}
			if err := createRetrying(ctx, c, u); err != nil {
				return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
			}
			fmt.Printf("applied %s/%s\n", strings.ToLower(u.GetKind()), u.GetName())
		}
	}
	return nil
}

// writeKubeconfig writes a kubeconfig for a cluster admin, for kubectl.
func writeKubeconfig(env *envtest.Environment, cfg *rest.Config, path string) (string, error) {
	user, err := env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	abs, _ := filepath.Abs(path)
	return abs, os.WriteFile(path, data, 0o600)
}

// printMail shows a received mail the way a newcomer wants to follow it.
func printMail(m mailsink.Mail) {
	fmt.Printf("\n--- mail to %s: %q\n", strings.Join(m.To, ", "), m.Subject)
	for _, l := range m.Links() {
		fmt.Printf("    link: %s\n", l)
	}
}

// startPortal runs the portal on portalAddr as its own identity, with config/portal's RBAC.
func startPortal(ctx context.Context, env *envtest.Environment, cfg *rest.Config) error {
	admin, err := client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		return err
	}
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: portalNS}}); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	if err := rig.GrantPortalRoles(ctx, admin, portalUser); err != nil {
		return err
	}
	user, err := env.AddUser(envtest.User{Name: portalUser}, cfg)
	if err != nil {
		return err
	}
	pm, err := operator.NewPortalManager(user.Config(), manager.Options{Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	if err := controllers.SetupIndexes(ctx, pm.GetFieldIndexer()); err != nil {
		return err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	srv, err := portal.New(portal.Config{Client: pm.GetClient(), APIReader: pm.GetAPIReader(),
		Notifier:  notify.NewDispatcher(notify.DispatcherOptions{Logger: ctrl.Log.WithName("notify"), Allow: notify.LoopbackOnly}),
		Namespace: portalNS, Key: key, Secure: false, Log: ctrl.Log.WithName("portal")})
	if err != nil {
		return err
	}
	go func() { _ = pm.Start(ctx) }()
	if !pm.GetCache().WaitForCacheSync(ctx) {
		return errors.New("the portal's cache did not sync")
	}
	ln, err := net.Listen("tcp", portalAddr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	go func() { <-ctx.Done(); _ = hs.Close() }()
	return nil
}

// publicWays waits for the sample organization's door number and public link.
func publicWays(ctx context.Context, c client.Client) (door, link string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		org := &rosterv1.Organization{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "acme"}, org); err == nil && org.Status.PublicLinkSecretRef != nil {
			sec := &corev1.Secret{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: org.Status.PublicLinkSecretRef.Name}, sec); err == nil && len(sec.Data["link"]) > 0 {
				return org.Status.DoorNumber, string(sec.Data["link"])
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "(not assigned yet)", portalURL + "/"
}
