package faults

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
	"github.com/roster-dev/roster/internal/testenv/rig"
)

const (
	// portalUser is the portal's identity: the manager's default --portal-user.
	portalUser = "system:serviceaccount:roster-system:roster-portal"
	portalNS   = "roster-system"
	// pageTimeout bounds one page: a portal that waits longer on a missing API server hangs.
	pageTimeout = 10 * time.Second
)

// portal is the portal binary running as its own process, started by the first test that
// needs it.
var (
	portal     *portalProcess
	portalOnce sync.Once
	portalErr  error
)

// portalProcess is the portal's process, the address it serves and its key (which no page
// may show).
type portalProcess struct {
	*rig.Process
	url, key string
}

// ensurePortal starts the portal once, and shows its log when the test fails.
func ensurePortal(t *testing.T) *portalProcess {
	t.Helper()
	portalOnce.Do(func() { portal, portalErr = startPortal() })
	if portalErr != nil {
		t.Fatal(portalErr)
	}
	if portal.Exited() {
		t.Fatalf("the portal is not running:\n%s", portal.LogTail(30))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("portal log (last lines):\n%s", portal.LogTail(25))
		}
	})
	return portal
}

// startPortal builds cmd/portal and runs it as it ships (config/portal): its own
// ServiceAccount with exactly config/portal/rbac.yaml, its key in a file, plain HTTP behind
// what would be a TLS-terminating ingress.
func startPortal() (*portalProcess, error) {
	bins, err := rig.Build(tmpDir, "portal")
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := cluster.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: portalNS}}); client.IgnoreAlreadyExists(err) != nil {
		return nil, err
	}
	if err := rig.GrantPortalRoles(ctx, cluster, portalUser); err != nil {
		return nil, fmt.Errorf("config/portal/rbac.yaml: %w", err)
	}
	_, kubeconfig, err := plane.AddUser(portalUser)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	key := base64.StdEncoding.EncodeToString(raw)
	keyPath := filepath.Join(tmpDir, "portal.key")
	if err := os.WriteFile(keyPath, []byte(key), 0o600); err != nil {
		return nil, err
	}
	port, err := rig.FreePort()
	if err != nil {
		return nil, err
	}
	probe, err := rig.FreePort()
	if err != nil {
		return nil, err
	}
	p := &portalProcess{url: "http://127.0.0.1:" + strconv.Itoa(port), key: key}
	p.Process = &rig.Process{
		Name: "portal",
		Bin:  bins[0],
		Args: []string{
			"--listen=127.0.0.1:" + strconv.Itoa(port),
			"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probe),
			"--namespace=" + portalNS,
			"--key-file=" + keyPath,
			"--insecure-cookies", // plain HTTP on loopback
			"--notify-allow-cidr=127.0.0.0/8",
			// The test asks for pages every few hundred milliseconds from one address.
			"--rate-per-ip=100000", "--rate-per-secret=100000",
		},
		Env:     []string{"KUBECONFIG=" + kubeconfig},
		LogPath: filepath.Join(tmpDir, "portal.log"),
		Ready:   func(ctx context.Context) error { return rig.Readyz(ctx, probe) },
	}
	return p, p.Start()
}

// browser is a person's browser, as far as the portal can tell: a cookie jar, forms posted
// with the CSRF token of the last page, redirects followed.
type browser struct {
	c    *http.Client
	base string
	csrf string
}

type page struct {
	status int
	url    string // where the redirects ended
	body   string
	ctype  string
	took   time.Duration
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func newBrowser(base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{c: &http.Client{Jar: jar, Timeout: 2 * pageTimeout}, base: base}
}

func (b *browser) do(req *http.Request) (page, error) {
	start := time.Now()
	resp, err := b.c.Do(req)
	if err != nil {
		return page{took: time.Since(start)}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	p := page{status: resp.StatusCode, url: resp.Request.URL.Path, body: string(body), ctype: resp.Header.Get("Content-Type"), took: time.Since(start)}
	if m := csrfField.FindStringSubmatch(p.body); m != nil {
		b.csrf = html.UnescapeString(m[1])
	}
	return p, err
}

func (b *browser) get(path string) (page, error) {
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	if err != nil {
		return page{}, err
	}
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) (page, error) {
	form.Set("csrf", b.csrf)
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return page{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// expect checks that a page came, within pageTimeout, with the status and a text.
func expect(p page, err error, status int, text string) error {
	switch {
	case err != nil:
		return err
	case p.took > pageTimeout:
		return fmt.Errorf("%s took %s", p.url, p.took)
	case p.status != status || !strings.Contains(p.body, text):
		return fmt.Errorf("%s: %d, want %d with %q: %.300s", p.url, p.status, status, text, pageText(p.body))
	}
	return nil
}

var tags = regexp.MustCompile(`(?s)<[^>]*>|\s+`)

// pageText is a page without its markup, for messages.
func pageText(body string) string { return strings.TrimSpace(tags.ReplaceAllString(body, " ")) }

// leaks lists what an answer must never show a stranger: a stack trace, the Go error of an
// API call, where the API server is, the portal's key, a link's token.
func leaks(body string, secrets ...string) []string {
	var found []string
	for _, s := range append([]string{"goroutine ", "panic", ".go:", "dial tcp", "connection refused", "http2:", "rest.Config",
		strings.TrimPrefix(env.Config.Host, "https://")}, secrets...) {
		if s != "" && strings.Contains(body, s) {
			found = append(found, s)
		}
	}
	return found
}

var sixDigits = regexp.MustCompile(`\b(\d{6})\b`)

// signUp goes through the sign-up pages from a link to the done page: details, the code
// from the mail, a password.
func signUp(t *testing.T, o *org, b *browser, link, username, addr, title, done string) {
	t.Helper()
	p, err := b.get(link)
	must(t, expect(p, err, http.StatusOK, title))
	before := len(mailsTo(o.sink, addr))
	p, err = b.post("/signup", url.Values{"username": {username}, "displayName": {"Person " + username}, "email": {addr}})
	must(t, expect(p, err, http.StatusOK, "Check your messages"))
	var code string
	waitFor(t, context.Background(), time.Minute, "the code mail to "+addr, func() error {
		mails := mailsTo(o.sink, addr)
		if len(mails) <= before {
			return fmt.Errorf("%d mails", len(mails))
		}
		m := sixDigits.FindStringSubmatch(mails[len(mails)-1].Text)
		if m == nil {
			return fmt.Errorf("no code in %q", mails[len(mails)-1].Subject)
		}
		code = m[1]
		return nil
	})
	p, err = b.post("/verify", url.Values{"code": {code}})
	must(t, expect(p, err, http.StatusOK, "Choose a password"))
	p, err = b.post("/password", url.Values{"password": {"correct horse battery"}, "password2": {"correct horse battery"}})
	must(t, expect(p, err, http.StatusOK, done))
}

// The API server goes away while the portal is serving, and comes back. The portal, a
// separate process like the manager, answers meanwhile with its own pages, never a hang or a
// stack trace, and works again afterwards without a restart of its own: the public link and
// the door number open, a link made after the outage opens (its cache follows the API server
// again), and people sign up to the end, each with their Member.
func TestPortalSurvivesAPIServerOutage(t *testing.T) {
	ensureManager(t)
	p := ensurePortal(t)
	ctx := context.Background()
	outage, within := pick(4*time.Second, 20*time.Second), pick(time.Minute, 2*time.Minute)
	o := newOrg(t, ctx, "portal", func(org *rosterv1.Organization) { org.Spec.PublicInvitation.Enabled = true })
	acme := &rosterv1.Organization{}
	var token string
	waitFor(t, ctx, time.Minute, "the public link", func() error {
		if err := cluster.Get(ctx, client.ObjectKey{Namespace: o.ns, Name: "acme"}, acme); err != nil {
			return err
		}
		if acme.Status.PublicLinkSecretRef == nil || acme.Status.DoorNumber == "" {
			return fmt.Errorf("no public link or door number yet: %+v", acme.Status)
		}
		sec := &corev1.Secret{}
		if err := cluster.Get(ctx, client.ObjectKey{Namespace: o.ns, Name: acme.Status.PublicLinkSecretRef.Name}, sec); err != nil {
			return err
		}
		link := string(sec.Data[linktoken.SecretKeyLink])
		token = link[strings.LastIndex(link, "/")+1:]
		return nil
	})
	door := acme.Status.DoorNumber
	pid := p.Pid()
	const joinTitle = "Ask to join Acme"
	joinOpens := func() error {
		pg, err := newBrowser(p.url).get("/join/" + token)
		return expect(pg, err, http.StatusOK, joinTitle)
	}
	doorOpens := func() error {
		b := newBrowser(p.url)
		if _, err := b.get("/"); err != nil {
			return err
		}
		pg, err := b.post("/door", url.Values{"door": {door}})
		return expect(pg, err, http.StatusOK, joinTitle)
	}
	must(t, joinOpens())
	must(t, doorOpens())

	restart := stopAPIServer(t, ctx)
	down := time.Now()
	seen := map[string]map[int]int{}
	note := func(what string, pg page) {
		if seen[what] == nil {
			seen[what] = map[int]int{}
		}
		seen[what][pg.status]++
	}
	// check is what every answer during the outage must be: in time, the portal's own page,
	// nothing in it that a stranger must not see.
	check := func(what string, pg page, err error) {
		t.Helper()
		switch {
		case err != nil:
			t.Errorf("%s while the API server is down: %v (after %s)", what, err, pg.took)
			return
		case pg.took > pageTimeout:
			t.Errorf("%s while the API server is down took %s", what, pg.took)
		case !strings.HasPrefix(pg.ctype, "text/html") && !strings.HasPrefix(pg.ctype, "text/plain"):
			t.Errorf("%s while the API server is down: %s", what, pg.ctype)
		}
		if l := leaks(pg.body, p.key, token); len(l) > 0 {
			t.Errorf("%s while the API server is down shows %q: %.500s", what, l, pg.body)
		}
		note(what, pg)
	}
	for time.Since(down) < outage {
		pg, err := newBrowser(p.url).get("/healthz")
		check("healthz", pg, err)
		if err == nil && pg.status != http.StatusOK {
			t.Errorf("healthz while the API server is down: %d", pg.status)
		}
		// The public link's page reads the portal's cache: it may still open, or say to try
		// again; either way one of the portal's pages.
		pg, err = newBrowser(p.url).get("/join/" + token)
		check("public link", pg, err)
		if err == nil && !(pg.status == http.StatusOK && strings.Contains(pg.body, joinTitle)) &&
			!(pg.status >= 500 && strings.Contains(pg.body, "try again")) {
			t.Errorf("the public link while the API server is down: %d %.300s", pg.status, pageText(pg.body))
		}
		// A door number is looked up past the cache: the API server is needed, and the page
		// says to try again.
		b := newBrowser(p.url)
		if _, err := b.get("/"); err != nil {
			t.Errorf("the home page while the API server is down: %v", err)
		}
		pg, err = b.post("/door", url.Values{"door": {door}})
		check("door number", pg, err)
		if err == nil && !(pg.status >= 500 && strings.Contains(pg.body, "try again")) {
			t.Errorf("the door number while the API server is down: %d %.300s", pg.status, pageText(pg.body))
		}
		time.Sleep(300 * time.Millisecond)
	}
	restart()
	up := time.Now()
	t.Logf("API server down for %s; the portal answered meanwhile (page: status: count) %v", up.Sub(down).Round(time.Millisecond), seen)

	waitFor(t, ctx, within, "the public link after the outage", joinOpens)
	waitFor(t, ctx, within, "the door number after the outage", doorOpens)
	t.Logf("public link and door number open %s after the restart", time.Since(up).Round(time.Millisecond))

	// The portal's cache follows the API server again: a change made after the outage shows.
	waitFor(t, ctx, within, "renaming the organization", func() error {
		if err := cluster.Get(ctx, client.ObjectKeyFromObject(acme), acme); err != nil {
			return err
		}
		orig := acme.DeepCopy()
		acme.Spec.DisplayName = "Acme Reborn"
		return admin.Patch(ctx, acme, client.MergeFrom(orig))
	})
	renamed := time.Now()
	waitFor(t, ctx, within, "the new name on the public link's page", func() error {
		pg, err := newBrowser(p.url).get("/join/" + token)
		return expect(pg, err, http.StatusOK, "Ask to join Acme Reborn")
	})
	t.Logf("a change made after the outage shows on the portal %s after it was made, %s after the restart",
		time.Since(renamed).Round(time.Millisecond), time.Since(up).Round(time.Millisecond))

	// An invitation made after the outage: its link opens only once the portal's cache has
	// the new link Secret, invitation and Member, so only once its watches came back.
	names := []string{"after-outage"}
	must(t, createRetrying(ctx, admin, o.invitation(names[0])))
	o.waitAllSent(t, ctx, names, pick(3*time.Minute, 5*time.Minute)) // the manager's recovery, as in TestAPIServerOutage
	var link string
	waitFor(t, ctx, time.Minute, "the invitation mail", func() error {
		mails := mailsTo(o.sink, email(names[0]))
		if len(mails) == 0 || len(mails[0].Links()) == 0 {
			return errors.New("no mail with a link yet")
		}
		l := mails[0].Links()[0]
		link = "/invite/" + l[strings.LastIndex(l, "/")+1:]
		return nil
	})
	sent := time.Now()
	b := newBrowser(p.url)
	waitFor(t, ctx, within, "the new invitation's link on the portal", func() error {
		pg, err := b.get(link)
		return expect(pg, err, http.StatusOK, "You are invited to Acme")
	})
	t.Logf("an invitation made after the outage opens on the portal %s after its mail, %s after the restart",
		time.Since(sent).Round(time.Millisecond), time.Since(up).Round(time.Millisecond))

	// Sign-ups to the end: the invited person (Alice, a Super Admin, invited them: no
	// approval), and someone through the public link (a new Member, awaiting approval).
	signUp(t, o, b, link, "after-outage", email(names[0]), "You are invited to Acme", "Welcome to Acme")
	signUp(t, o, newBrowser(p.url), "/join/"+token, "joiner", email("joiner"), joinTitle, "You asked to join Acme")
	waitMember(t, ctx, o.ns, names[0], rosterv1.MemberActive)
	waitMember(t, ctx, o.ns, "joiner", rosterv1.MemberPending)
	for _, name := range []string{names[0], "joiner"} {
		m := &rosterv1.Member{}
		must(t, cluster.Get(ctx, client.ObjectKey{Namespace: o.ns, Name: name}, m))
		if m.Spec.Username != name {
			t.Errorf("Member %s has username %q, want %q", name, m.Spec.Username, name)
		}
	}
	if p.Exited() || p.Pid() != pid {
		t.Fatalf("the portal did not survive the outage (exited %v, pid %d, was %d)", p.Exited(), p.Pid(), pid)
	}
}
