package portal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/controllers"
	"github.com/roster-dev/roster/internal/notify"
	"github.com/roster-dev/roster/internal/notify/mailsink"
	"github.com/roster-dev/roster/internal/operator"
	"github.com/roster-dev/roster/internal/testenv"
	"github.com/roster-dev/roster/internal/testenv/rig"
)

// The end-to-end tests drive Debian's Chromium, headless, through the real pages, served by
// a real portal against a real kube-apiserver with Roster's webhooks and controllers, and
// read the mails from a real SMTP server on loopback. The portal acts under exactly the
// RBAC of config/portal/rbac.yaml, so a page that needs a right the portal lacks fails
// here. One browser serves every test; each test has its own browser context (cookies).

const (
	managerUser   = "roster-manager"
	portalUser    = "system:serviceaccount:roster-system:roster-portal"
	adminUser     = "alice@acme.example"
	portalNS      = "roster-system"
	testPassword  = "correct horse battery"
	mobileW, mobH = 390, 844
	deskW, deskH  = 1280, 800
)

// e2e is the shared environment; skip says why there is none.
var e2e struct {
	skip      string
	k8s       client.Client // cluster admin
	admin     client.Client // alice, admin of every test organization
	manager   client.Client // the manager's identity
	sink      *mailsink.Server
	url       string // the portal
	browser   context.Context
	shots     string
	key       []byte
	portalCfg Config // to start more portals (other clocks) on the same cache
	mu        sync.Mutex
	seen      map[string]int // mails already taken, by recipient
}

func TestMain(m *testing.M) {
	stop, err := startE2E()
	if err != nil {
		e2e.skip = err.Error()
		fmt.Fprintf(os.Stderr, "\n!!! portal end-to-end tests SKIPPED: %v\n\n", err)
	}
	code := m.Run()
	if stop != nil {
		stop()
	}
	os.Exit(code)
}

// needE2E skips a test, loudly, without the environment.
func needE2E(t *testing.T) {
	t.Helper()
	if e2e.skip != "" {
		t.Skipf("SKIPPED, no end-to-end environment: %s", e2e.skip)
	}
}

func startE2E() (stop func(), err error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set; run with KUBEBUILDER_ASSETS=$(hack/setup-envtest.sh)")
	}
	out, err := exec.Command(filepath.Join(testenv.Root(), "hack", "setup-chromium.sh")).Output()
	if err != nil {
		return nil, fmt.Errorf("no Chromium (hack/setup-chromium.sh failed: %v)", err)
	}
	chromium := strings.TrimSpace(string(out))
	logf.SetLogger(logr.Discard())

	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
			stop = nil
		}
	}()

	e2e.sink, err = mailsink.Start(mailsink.Options{})
	if err != nil {
		return stop, err
	}
	stops = append(stops, func() { _ = e2e.sink.Close() })

	api := testenv.New(true)
	cfg, err := api.Start()
	if err != nil {
		return stop, err
	}
	stops = append(stops, func() { _ = api.Stop() })
	scheme := operator.NewScheme()
	if e2e.k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return stop, err
	}
	e2e.admin = impersonating(cfg, adminUser)
	e2e.manager = impersonating(cfg, managerUser)
	ctx, cancel := context.WithCancel(context.Background())
	stops = append(stops, cancel)

	mgrUser, err := api.AddUser(envtest.User{Name: managerUser, Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		return stop, err
	}
	// The portal has no group: only the roles of config/portal.
	pUser, err := api.AddUser(envtest.User{Name: portalUser}, cfg)
	if err != nil {
		return stop, err
	}
	if err := applyPortalRBAC(ctx, e2e.k8s); err != nil {
		return stop, fmt.Errorf("config/portal/rbac.yaml: %w", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return stop, err
	}
	e2e.url = "http://" + ln.Addr().String()
	notifier := notify.NewDispatcher(notify.DispatcherOptions{Allow: notify.LoopbackOnly}) // the test SMTP server is on loopback

	wh := api.WebhookInstallOptions
	mgr, err := operator.NewManager(mgrUser.Config(), manager.Options{
		Metrics:       metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir}),
	})
	if err != nil {
		return stop, err
	}
	if err := operator.Setup(ctx, mgr, operator.Options{Notifier: notifier, PortalURL: e2e.url, TrustedUsers: []string{managerUser},
		PortalUsers: []string{portalUser}, Webhooks: true}); err != nil {
		return stop, err
	}
	go func() { _ = mgr.Start(ctx) }()

	pm, err := operator.NewPortalManager(pUser.Config(), manager.Options{Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return stop, err
	}
	if err := controllers.SetupIndexes(ctx, pm.GetFieldIndexer()); err != nil {
		return stop, err
	}
	go func() { _ = pm.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) || !pm.GetCache().WaitForCacheSync(ctx) {
		return stop, errors.New("caches did not sync")
	}
	e2e.key = bytes.Repeat([]byte("k"), 32)
	e2e.portalCfg = Config{Client: pm.GetClient(), APIReader: pm.GetAPIReader(), Notifier: notifier, Clock: clock.RealClock{},
		Namespace: portalNS, Key: e2e.key, Limits: Limits{PerIP: 10000, PerSecret: 10000},
		Log: funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{})}
	srv, err := New(e2e.portalCfg)
	if err != nil {
		return stop, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	stops = append(stops, func() { _ = hs.Close() })
	if err := waitWebhooks(ctx); err != nil {
		return stop, err
	}

	e2e.shots = os.Getenv("ROSTER_SCREENSHOTS")
	if e2e.shots == "" {
		e2e.shots = filepath.Join(os.TempDir(), "roster-portal-screenshots")
	}
	if err := os.MkdirAll(e2e.shots, 0o755); err != nil {
		return stop, err
	}
	fmt.Fprintf(os.Stderr, "portal screenshots go to %s\n", e2e.shots)
	profile, err := os.MkdirTemp("", "roster-chromium-")
	if err != nil {
		return stop, err
	}
	stops = append(stops, func() { _ = os.RemoveAll(profile) })
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true), chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile))
	browser, cancelBrowser := chromedp.NewContext(alloc)
	stops = append(stops, cancelAlloc, cancelBrowser)
	if err := chromedp.Do(browser, chromedp.Navigate("about:blank")); err != nil {
		return stop, fmt.Errorf("start Chromium: %w", err)
	}
	e2e.browser = browser
	e2e.seen = map[string]int{}
	return stop, nil
}

func impersonating(cfg *rest.Config, user string) client.Client {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:masters"}}
	cl, err := client.New(c, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		panic(err)
	}
	return cl
}

// applyPortalRBAC applies config/portal/rbac.yaml, bound to the test's portal user, in the
// portal's own namespace.
func applyPortalRBAC(ctx context.Context, c client.Client) error {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: portalNS}}); err != nil {
		return err
	}
	return rig.GrantPortalRoles(ctx, c, portalUser)
}

// waitWebhooks waits until the API server calls Roster's webhooks.
func waitWebhooks(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "warmup-"}}
		if err := e2e.k8s.Create(ctx, ns); err == nil {
			err = e2e.k8s.Create(ctx, &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: ns.Name},
				Spec: rosterv1.OrganizationSpec{DisplayName: "w"}}, client.DryRunAll)
			_ = e2e.k8s.Delete(ctx, ns)
			if err == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the webhooks did not answer")
}

// orgOptions change the test organization.
type orgOption func(*rosterv1.Organization)

// newOrg makes a namespace and Organization "acme" whose mails go to the sink and whose
// links point at the portal, and waits until it is ready (door number, public link).
func newOrg(t *testing.T, opts ...orgOption) *rosterv1.Organization {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "portal-"}}
	must(t, e2e.k8s.Create(ctx, ns))
	t.Cleanup(func() { _ = e2e.k8s.Delete(context.Background(), ns) })
	must(t, e2e.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "smtp", Namespace: ns.Name,
		Labels: map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster}},
		StringData: map[string]string{"host": e2e.sink.Host(), "port": fmt.Sprint(e2e.sink.Port()), "tls": "none"}}))
	org := &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns.Name},
		Spec: rosterv1.OrganizationSpec{DisplayName: "Acme Corporation", Admins: []rosterv1.Subject{{Kind: "User", Name: adminUser}},
			JoinRules:        rosterv1.JoinRules{RequiredFields: []rosterv1.MemberField{"department"}},
			PublicInvitation: rosterv1.PublicInvitation{Enabled: true},
			Notifications:    rosterv1.Notifications{Email: &rosterv1.EmailNotifications{SMTPSecretRef: rosterv1.LocalObjectReference{Name: "smtp"}, From: "Acme <people@acme.example>"}},
			PortalURL:        e2e.url,
			Applications: []rosterv1.Application{{Name: "support", DisplayName: "Support Portal",
				Portal:  rosterv1.Portal{Enabled: true, SelfRegistration: true, ApprovalRequired: true},
				License: rosterv1.License{Seats: 5}}}}}
	for _, o := range opts {
		o(org)
	}
	must(t, e2e.k8s.Create(ctx, org))
	eventually(t, "the organization is ready", func() bool {
		if err := e2e.k8s.Get(ctx, client.ObjectKeyFromObject(org), org); err != nil {
			return false
		}
		return org.Status.DoorNumber != "" && org.Status.PublicLinkSecretRef != nil
	})
	return org
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// eventually polls until ok, for what the controllers and caches do in their own time.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nextMail waits for the next mail to addr that has not been taken yet.
func nextMail(t *testing.T, addr string) mailsink.Mail {
	t.Helper()
	var got mailsink.Mail
	eventually(t, "a mail arrives for "+addr, func() bool {
		e2e.mu.Lock()
		defer e2e.mu.Unlock()
		n := 0
		for _, m := range e2e.sink.Messages() {
			for _, to := range m.To {
				if strings.EqualFold(to, addr) {
					if n == e2e.seen[addr] {
						got = m
						e2e.seen[addr]++
						return true
					}
					n++
				}
			}
		}
		return false
	})
	return got
}

// mailsTo counts the mails that reached addr.
func mailsTo(addr string) int {
	n := 0
	for _, m := range e2e.sink.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, addr) {
				n++
			}
		}
	}
	return n
}

var codePattern = regexp.MustCompile(`\b(\d{6})\b`)

// codeIn reads the verification code from a mail.
func codeIn(t *testing.T, m mailsink.Mail) string {
	t.Helper()
	c := codePattern.FindStringSubmatch(m.Text)
	if c == nil {
		t.Fatalf("no code in the mail %q", m.Subject)
	}
	return c[1]
}

// linkIn reads the portal link from a mail.
func linkIn(t *testing.T, m mailsink.Mail, page string) string {
	t.Helper()
	for _, l := range m.Links() {
		if strings.HasPrefix(l, e2e.url+"/"+page+"/") {
			return l
		}
	}
	t.Fatalf("no /%s/ link in the mail %q: %v", page, m.Subject, m.Links())
	return ""
}

// tab is a browser tab with its own cookies.
func tab(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(e2e.browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	must(t, chromedp.Do(ctx, chromedp.EmulateViewport(deskW, deskH)))
	return ctx
}

// open navigates and returns the status of the page that loads, after redirects.
func open(t *testing.T, ctx context.Context, url string) int {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(tctx, chromedp.Navigate(url))
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return int(resp.Status)
}

// fill sets the form fields by id.
func fill(t *testing.T, ctx context.Context, values map[string]string) {
	t.Helper()
	for id, v := range values {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := chromedp.Do(tctx, chromedp.SetValue(chromedp.CSS("#"+id), v))
		cancel()
		if err != nil {
			t.Fatalf("no field #%s on the page %q (%v); it says: %s", id, heading(t, ctx), err, pageText(t, ctx))
		}
	}
}

// submit clicks a form's button and returns the status of the page that loads.
func submit(t *testing.T, ctx context.Context, formID string) int {
	t.Helper()
	invalid, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#`+formID+` input')).filter(i => !i.checkValidity()).map(i => i.name)`))
	must(t, err)
	if len(invalid) > 0 {
		t.Fatalf("the browser would not send form %s: invalid %v", formID, invalid)
	}
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(tctx, chromedp.Click(chromedp.CSS("#"+formID+"-submit")))
	must(t, err)
	return int(resp.Status)
}

// heading is the page's h1.
func heading(t *testing.T, ctx context.Context) string {
	t.Helper()
	h, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	must(t, err)
	return strings.TrimSpace(h)
}

// pageText is the main text of the page.
func pageText(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	must(t, err)
	return s
}

// location is the address in the address bar.
func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	l, err := chromedp.Run(ctx, chromedp.Location())
	must(t, err)
	return l
}

// expectPage checks the page's heading and, optionally, text in it.
func expectPage(t *testing.T, ctx context.Context, wantHeading string, wantText ...string) {
	t.Helper()
	if h := heading(t, ctx); h != wantHeading {
		t.Fatalf("page heading is %q, want %q; page says: %s", h, wantHeading, pageText(t, ctx))
	}
	text := pageText(t, ctx)
	for _, w := range wantText {
		if !strings.Contains(text, w) {
			t.Fatalf("page %q does not say %q; it says: %s", wantHeading, w, text)
		}
	}
}

// shot saves the page at a phone's and a desktop's size.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	for _, size := range [][2]int64{{mobileW, mobH}, {deskW, deskH}} {
		must(t, chromedp.Do(ctx, chromedp.EmulateViewport(size[0], size[1])))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(e2e.shots, fmt.Sprintf("%s-%dx%d.png", name, size[0], size[1])), png, 0o644))
	}
}
