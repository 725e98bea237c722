package controllers_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/notify"
	"github.com/roster-dev/roster/internal/operator"
	"github.com/roster-dev/roster/internal/testenv"
)

// The controllers run in a real manager, with the admission webhooks served to a real
// kube-apiserver, as in a cluster. Tests act as named users through impersonation, so the
// webhooks see who is asking.

const (
	managerUser = "roster-manager"
	portalUser  = "roster-portal"
	adminUser   = "alice@acme.example"
	timeout     = 20 * time.Second
	interval    = 50 * time.Millisecond
)

var (
	testEnv     *envtest.Environment
	managerCfg  *rest.Config
	k8sClient   client.Client // a cluster admin who is nobody in any organization
	adminClient client.Client // alice, a Super Admin of every organization the tests make
	notifier    = &recordingNotifier{real: notify.NewDispatcher(notify.DispatcherOptions{Allow: notify.LoopbackOnly})}
	fakeClock   = clocktesting.NewFakeClock(time.Now())
	mgrClient   client.Client // the manager's cached client
	// portalClient writes as the portal and reads from the manager's cache, with its
	// indexes, as the portal reads from its own.
	portalClient client.Client
	stopManager  context.CancelFunc
	managerDone  chan struct{}
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	testEnv = testenv.New(true)
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	adminClient = asUser(adminUser)

	// The manager runs with exactly the rules make manifests generates from the controllers'
	// RBAC markers, as its ServiceAccount does in a cluster: a rule it lacks fails the specs.
	grantManagerRole(context.Background(), managerUser)
	mgrUser, err := testEnv.AddUser(envtest.User{Name: managerUser}, cfg)
	Expect(err).NotTo(HaveOccurred())
	managerCfg = mgrUser.Config()
	startManager()
	createProbe()
})

// grantManagerRole binds the generated manager ClusterRole (config/rbac/role.yaml) to user.
func grantManagerRole(ctx context.Context, user string) {
	raw, err := os.ReadFile("../config/rbac/role.yaml")
	Expect(err).NotTo(HaveOccurred())
	role := &rbacv1.ClusterRole{}
	Expect(yaml.Unmarshal(raw, role)).To(Succeed())
	Expect(k8sClient.Create(ctx, role)).To(Succeed())
	Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	})).To(Succeed())
}

// The probe organization lets tests see whether the API server calls the webhooks.
const probeNamespace, probeDoorNumber = "webhook-probe", "99999999"

func createProbe() {
	ctx := context.Background()
	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: probeNamespace}})).To(Succeed())
	Expect(k8sClient.Create(ctx, &rosterv1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: probeNamespace},
		Spec: rosterv1.OrganizationSpec{DisplayName: "probe", DoorNumber: probeDoorNumber,
			Admins: []rosterv1.Subject{{Kind: "User", Name: adminUser}}},
	})).To(Succeed())
	Eventually(func() bool { return webhookCalled(true) }, timeout, interval).Should(BeTrue())
	probeCreated = true
}

var probeCreated bool

var _ = AfterSuite(func() {
	if stopManager != nil {
		stopManager()
		<-managerDone
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// No reconcile may panic: controller-runtime recovers panics and counts them; a spec during
// which the count grows fails.
var _ = JustAfterEach(func() {
	Expect(reconcilePanics()).To(BeZero(), "a reconciler panicked; see the log")
})

func reconcilePanics() float64 {
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	var total float64
	for _, f := range families {
		if f.GetName() == "controller_runtime_reconcile_panics_total" {
			for _, m := range f.GetMetric() {
				total += counterValue(m)
			}
		}
	}
	return total
}

func counterValue(m *dto.Metric) float64 { return m.GetCounter().GetValue() }

// metricsAddr is where the running manager serves its metrics.
var metricsAddr string

// freePort is a loopback port nothing listens on now.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startManager starts a fresh manager, as a new pod would.
func startManager() {
	opts := testEnv.WebhookInstallOptions
	metricsAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
	mgr, err := operator.NewManager(managerCfg, manager.Options{
		Metrics:       operator.MetricsOptions(metricsAddr),
		WebhookServer: webhook.NewServer(webhook.Options{Host: opts.LocalServingHost, Port: opts.LocalServingPort, CertDir: opts.LocalServingCertDir}),
		Controller:    config.Controller{SkipNameValidation: ptr.To(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	Expect(operator.Setup(ctx, mgr, operator.Options{
		Clock:        fakeClock,
		Notifier:     notifier,
		PortalURL:    "https://join.test",
		TrustedUsers: []string{managerUser},
		PortalUsers:  []string{portalUser},
		RetryBackoff: func(int) time.Duration { return 200 * time.Millisecond },
		Webhooks:     true,
	})).To(Succeed())
	stopManager = cancel
	mgrClient = mgr.GetClient()
	portalClient, err = client.New(portalConfig(), client.Options{Scheme: operator.NewScheme(), Cache: &client.CacheOptions{Reader: mgr.GetCache()}})
	Expect(err).NotTo(HaveOccurred())
	managerDone = make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(managerDone)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())
	// Wait until the webhook answers, so the first request of a test is not refused.
	Eventually(func() error {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "warmup-"}}
		if err := k8sClient.Create(context.Background(), ns); err != nil {
			return err
		}
		defer k8sClient.Delete(context.Background(), ns)
		return k8sClient.Create(context.Background(), &rosterv1.Organization{
			ObjectMeta: metav1.ObjectMeta{Name: "warmup", Namespace: ns.Name},
			Spec:       rosterv1.OrganizationSpec{DisplayName: "warmup"},
		}, client.DryRunAll)
	}, timeout, interval).Should(Succeed())
	if probeCreated {
		Eventually(func() bool { return webhookCalled(false) }, timeout, interval).Should(BeTrue())
	}
}

// restartManager stops the manager and starts another, as when the pod is replaced.
func restartManager() {
	stopManager()
	<-managerDone
	startManager()
}

// portalConfig acts as the portal's identity.
func portalConfig() *rest.Config {
	cfg := rest.CopyConfig(testEnv.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: portalUser, Groups: []string{"system:masters"}}
	return cfg
}

// asUser is a client that acts as the named user.
func asUser(name string, groups ...string) client.Client {
	cfg := rest.CopyConfig(testEnv.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: name, Groups: append([]string{"system:masters"}, groups...)}
	c, err := client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	return c
}

func newNamespace(ctx context.Context) string { return testenv.Namespace(ctx, k8sClient, "roster") }

// recordingNotifier records what the controllers hand over and can be told to fail. Where
// an organization configures a real channel (an SMTP server on loopback in the
// notification tests) it delivers through the real dispatcher too.
type recordingNotifier struct {
	real     notify.Notifier
	mu       sync.Mutex
	sent     []sentMessage
	attempts []sentMessage    // every message handed over, delivered or not
	failWith map[string]error // by recipient email or phone
}

type sentMessage struct {
	Channel notify.Channel
	Message notify.Message
}

func (n *recordingNotifier) Send(ctx context.Context, s notify.Settings, ch notify.Channel, msg notify.Message) error {
	if s.Email != nil || s.SMS != nil || s.Webhook != nil {
		if err := n.real.Send(ctx, s, ch, msg); err != nil {
			return err
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.attempts = append(n.attempts, sentMessage{Channel: ch, Message: msg})
	for _, addr := range []string{msg.To.Email, msg.To.Phone} {
		if err := n.failWith[addr]; err != nil && addr != "" {
			return err
		}
	}
	n.sent = append(n.sent, sentMessage{Channel: ch, Message: msg})
	return nil
}

// attemptedLinks returns the link of every message handed over for an address, delivered or
// not, oldest first.
func (n *recordingNotifier) attemptedLinks(addr string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, s := range n.attempts {
		if s.Message.To.Email == addr || s.Message.To.Phone == addr {
			link, _ := s.Message.Data["Link"].(string)
			out = append(out, link)
		}
	}
	return out
}

// to returns the messages sent to an address, oldest first.
func (n *recordingNotifier) to(addr string) []sentMessage {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []sentMessage
	for _, s := range n.sent {
		if s.Message.To.Email == addr || s.Message.To.Phone == addr {
			out = append(out, s)
		}
	}
	return out
}

func (n *recordingNotifier) fail(addr string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.failWith == nil {
		n.failWith = map[string]error{}
	}
	n.failWith[addr] = err
}

// linkIn returns the sign-up link a message carries, and its token.
func linkIn(s sentMessage) (link, token string) {
	link, _ = s.Message.Data["Link"].(string)
	i := strings.LastIndex(link, "/")
	Expect(i).To(BeNumerically(">", 0), "no link in %v", s.Message.Key)
	return link, link[i+1:]
}

func key(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

func describe(o client.Object) string { return fmt.Sprintf("%s/%s", o.GetNamespace(), o.GetName()) }
