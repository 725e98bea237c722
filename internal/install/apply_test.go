package install_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/controllers"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/notify"
	"github.com/roster-dev/roster/internal/notify/mailsink"
	"github.com/roster-dev/roster/internal/operator"
	"github.com/roster-dev/roster/internal/testenv"
)

// TestInstallAsShipped applies the full kustomize install (config/default, config/prometheus
// and config/portal, rendered as TestChartEqualsKustomize renders them) to a real API server
// that enforces OwnerReferencesPermissionEnforcement, runs the manager and the portal as
// their rendered ServiceAccounts, with service account tokens and nothing but the rendered
// RBAC, and drives a tenant's flow as people who hold only the shipped user-facing roles.
// It then takes each resource of the */finalizers rule in turn out of the manager's
// ClusterRole and shows the flow that needs it stop on the API server's refusal.
//
// Only what cannot run on a bare API server is left out, and said in the log: the
// Deployments (this test runs their code in-process, as their ServiceAccounts), and the
// cert-manager and Prometheus Operator objects (no such CRDs here). The webhook
// configurations are applied as rendered but for their clientConfig: the Service each names
// becomes a URL to the webhook server this test runs, on the same path, with a test CA.
func TestInstallAsShipped(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("SKIPPED: KUBEBUILDER_ASSETS is not set; run with KUBEBUILDER_ASSETS=$(hack/setup-envtest.sh) (make test does)")
	}
	began := time.Now()
	g := NewWithT(t)
	logs := captureLogs(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	dirs, portal := kustomizeDirs(t)
	if !portal {
		t.Fatal("config/portal is missing: the portal cannot run as its ServiceAccount")
	}
	objs := kustomize(t, dirs...)

	env := testenv.Bare(testenv.OwnerReferencesPermissionEnforcement)
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start the control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop the control plane: %v", err)
		}
	})
	scheme := operator.NewScheme()
	must(t, apiextensionsv1.AddToScheme(scheme))
	admin, err := client.New(cfg, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())

	// What the Deployments would run as, and what they would be told about themselves.
	mgrDep := deployment(t, objs, "roster-manager")
	portalDep := deployment(t, objs, "roster-portal")
	mgrSA, portalSA := serviceAccountOf(t, objs, mgrDep), serviceAccountOf(t, objs, portalDep)
	g.Expect(flagOr(mgrDep, "--trusted-user", operator.DefaultTrustedUser)).To(Equal(mgrSA.user()),
		"the manager must recognise its own ServiceAccount as the trusted identity")
	g.Expect(flagOr(mgrDep, "--portal-user", operator.DefaultPortalUser)).To(Equal(portalSA.user()),
		"the manager must recognise the portal's ServiceAccount as the portal")
	wh := env.WebhookInstallOptions
	checkWebhookServing(t, objs, mgrDep)

	skipped := apply(ctx, t, admin, objs, net.JoinHostPort(wh.LocalServingHost, strconv.Itoa(wh.LocalServingPort)), wh.LocalServingCAData)
	t.Logf("%s: applied %d objects; not applied (cannot run on a bare API server): %s", since(began), len(objs)-len(skipped), strings.Join(skipped, ", "))

	// The manager and the portal, each with a token the API server issued to its
	// ServiceAccount: exactly the rendered RBAC, nothing else.
	mgrCfg := tokenConfig(ctx, t, admin, cfg, mgrSA)
	portalCfg := tokenConfig(ctx, t, admin, cfg, portalSA)
	var allow notify.AllowList // --notify-allow-cidr=127.0.0.0/8: the mail sink is on loopback
	g.Expect(allow.Set("127.0.0.0/8")).To(Succeed())
	metricsAddr := startManager(ctx, t, mgrCfg, mgrSA.namespace, wh, allow, mgrSA.user(), portalSA.user())
	acceptor := startPortal(ctx, t, portalCfg)
	waitWebhooks(ctx, t, admin)
	// The leader's announcement, a core/v1 Event on the Lease, is a write of its own.
	g.Eventually(func(g Gomega) {
		events := &corev1.EventList{}
		g.Expect(admin.List(ctx, events, client.InNamespace(mgrSA.namespace))).To(Succeed())
		g.Expect(slices.ContainsFunc(events.Items, func(e corev1.Event) bool {
			return e.Reason == "LeaderElection" && e.InvolvedObject.Name == operator.LeaderElectionID("")
		})).To(BeTrue(), "no LeaderElection Event: can the manager's ServiceAccount create core Events in %s?", mgrSA.namespace)
	}, timeout, interval).Should(Succeed())

	t.Logf("%s: the manager leads and the portal's cache has synced", since(began))

	// A team's namespace, with the people a namespace admin would bind.
	const ns = "acme"
	const ada, vic, eve = "ada@acme.example", "vic@acme.example", "eve@acme.example"
	g.Expect(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	bind(ctx, t, admin, ns, ada, "roster-admin")
	bind(ctx, t, admin, ns, vic, "roster-viewer")
	bind(ctx, t, admin, ns, eve, "edit")
	asAda, asVic, asEve := impersonate(t, cfg, ada), impersonate(t, cfg, vic), impersonate(t, cfg, eve)
	sink := smtpSecret(ctx, t, admin, ns)

	t.Run("an admin's invitation is mailed, accepted on the portal and the member is in", func(t *testing.T) {
		g := NewWithT(t)
		org := &rosterv1.Organization{
			ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns},
			Spec: rosterv1.OrganizationSpec{
				DisplayName:      "Acme",
				Admins:           []rosterv1.Subject{{Kind: "User", Name: ada}},
				PublicInvitation: rosterv1.PublicInvitation{Enabled: true},
				Notifications: rosterv1.Notifications{Email: &rosterv1.EmailNotifications{
					SMTPSecretRef: rosterv1.LocalObjectReference{Name: "smtp"}, From: "Acme <people@acme.example>"},
					TemplatesRef: &rosterv1.LocalObjectReference{Name: "templates"}},
			},
		}
		g.Expect(asAda.Create(ctx, org)).To(Succeed())
		waitReady(ctx, t, admin, org)
		// The public link's Secret belongs to the Organization and blocks its deletion: the
		// write OwnerReferencesPermissionEnforcement lets through only with organizations/finalizers.
		link := &corev1.Secret{}
		g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: org.Status.PublicLinkSecretRef.Name}, link)).To(Succeed())
		g.Expect(blocksDeletionOf(link, org)).To(BeTrue(), "public link Secret's owners: %+v", link.OwnerReferences)
		// The controllers' Events (events.k8s.io) are the manager's own writes too.
		g.Eventually(func(g Gomega) {
			events := &eventsv1.EventList{}
			g.Expect(admin.List(ctx, events, client.InNamespace(ns))).To(Succeed())
			g.Expect(slices.ContainsFunc(events.Items, func(e eventsv1.Event) bool {
				return e.Reason == "DoorNumberAssigned" && e.Regarding.Name == org.Name
			})).To(BeTrue(), "no DoorNumberAssigned Event for the Organization")
		}, timeout, interval).Should(Succeed())

		inv := &rosterv1.Invitation{
			ObjectMeta: metav1.ObjectMeta{Name: "mia", Namespace: ns},
			Spec: rosterv1.InvitationSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
				Method: rosterv1.InvitationMethodEmail, Invitee: rosterv1.Invitee{Name: "Mia", Email: "mia@mail.example"}},
		}
		g.Expect(asAda.Create(ctx, inv)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(inv), inv)).To(Succeed())
			g.Expect(inv.Status.Phase).To(Equal(rosterv1.InvitationSent), "%v", inv.Status.Conditions)
		}, timeout, interval).Should(Succeed())
		invited := &rosterv1.Member{}
		g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: inv.Status.MemberRef.Name}, invited)).To(Succeed())
		g.Expect(blocksDeletionOf(invited, inv)).To(BeTrue(), "the invited Member's owners: %+v", invited.OwnerReferences)

		var mails []mailsink.Mail
		g.Eventually(func() []mailsink.Mail { mails = mailsTo(sink, "mia@mail.example"); return mails }, timeout, interval).Should(HaveLen(1))
		g.Expect(mails[0].TLS).To(BeTrue())
		g.Expect(mails[0].Subject).To(Equal("Acme has a place for you"), "the subject from the Organization's templates ConfigMap")
		token := ""
		for _, l := range mails[0].Links() {
			if _, tok, ok := strings.Cut(l, "https://join.test/invite/"); ok {
				token = tok
			}
		}
		g.Expect(token).NotTo(BeEmpty(), "no invitation link in %v", mails[0].Links())

		step(t, "the portal, as its ServiceAccount, signs Mia up through her link")
		var m *rosterv1.Member
		g.Eventually(func() error { // until the portal's cache has seen the invitation Sent
			m, err = acceptor.Accept(ctx, token, membership.SignUp{Username: "mia", DisplayName: "Mia"})
			if errors.Is(err, membership.ErrInvalidLink) {
				return err
			}
			return nil
		}, timeout, interval).Should(Succeed())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(m.Spec.Username).To(Equal("mia"))
		g.Eventually(func(g Gomega) {
			g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
			g.Expect(m.Status.Phase).To(Equal(rosterv1.MemberActive), "%v", m.Status.Conditions)
			g.Expect(m.OwnerReferences).To(BeEmpty(), "a signed-up Member no longer belongs to its invitation")
		}, timeout, interval).Should(Succeed())
		// The portal may change a Member's owners, which the API server allows only to those who
		// may delete it; the webhook keeps it from deleting anyone.
		err = mustClient(t, portalCfg).Delete(ctx, m)
		g.Expect(apierrors.IsForbidden(err) && strings.Contains(err.Error(), "the portal may not delete a member")).To(BeTrue(), "%v", err)

		step(t, "Pat asks to join by the door number on the portal; Ada approves him")
		g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		door := org.Status.DoorNumber
		g.Expect(door).NotTo(BeEmpty())
		var pat *rosterv1.Member
		g.Eventually(func() error {
			o, err := acceptor.OrganizationForDoorNumber(ctx, door)
			if err != nil {
				return err
			}
			pat, err = acceptor.Join(ctx, o, rosterv1.JoinMethodDoorNumber, membership.SignUp{Username: "pat", DisplayName: "Pat", Email: "pat@mail.example"})
			return err
		}, timeout, interval).Should(Succeed())
		waitMember(ctx, t, admin, pat, rosterv1.MemberPending)
		g.Expect(asAda.Patch(ctx, pat, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"approval":"Approved"}}`)))).To(Succeed())
		waitMember(ctx, t, admin, pat, rosterv1.MemberActive)
		g.Expect(pat.Status.ApprovedBy).To(Equal(ada))

		step(t, "a viewer reads and writes nothing")
		g.Expect(asVic.Get(ctx, client.ObjectKeyFromObject(org), &rosterv1.Organization{})).To(Succeed())
		g.Expect(asVic.List(ctx, &rosterv1.MemberList{}, client.InNamespace(ns))).To(Succeed())
		err = asVic.Create(ctx, &rosterv1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "by-vic", Namespace: ns}, Spec: inv.Spec})
		g.Expect(rbacForbidden(err, vic, "create", "invitations")).To(BeTrue(), "%v", err)
		err = asVic.Patch(ctx, pat, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"approval":"Rejected"}}`)))
		g.Expect(rbacForbidden(err, vic, "patch", "members")).To(BeTrue(), "%v", err)

		step(t, "the manager's metrics, to a scraper bound to roster-metrics-reader only")
		scrape(ctx, t, admin, cfg, metricsAddr, portalSA)

		step(t, "Ada deletes the Organization: Roster deletes its children and lets it go")
		g.Expect(asAda.Delete(ctx, org)).To(Succeed())
		g.Eventually(func() bool {
			return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKeyFromObject(org), &rosterv1.Organization{}))
		}, timeout, interval).Should(BeTrue())
		for _, list := range []client.ObjectList{&rosterv1.InvitationList{}, &rosterv1.MemberList{}} {
			g.Expect(admin.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			g.Expect(meta.LenList(list)).To(BeZero(), "%T left behind", list)
		}
		g.Expect(apierrors.IsNotFound(admin.Get(ctx, client.ObjectKey{Name: membership.DoorNumberClaimName(door)}, &rosterv1.Claim{}))).To(BeTrue(),
			"the door number's Claim is released")
	})

	t.Run("the user roles are aggregated into admin, edit and view", func(t *testing.T) {
		userRolesAggregate(ctx, t, admin, objs, asEve, ns)
	})

	t.Run("without its */finalizers rule the manager cannot make what Organizations, Invitations and ExternalUsers own", func(t *testing.T) {
		withoutFinalizersRule(ctx, t, admin, mgrCfg, asAda, logs)
	})
	t.Logf("%s: done", since(began))
}

const (
	timeout  = 20 * time.Second
	interval = 50 * time.Millisecond
)

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }

// step says in the log what a test does next.
func step(t *testing.T, what string) {
	t.Helper()
	t.Log("· " + what)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// identity is a ServiceAccount.
type identity struct{ namespace, name string }

func (i identity) user() string { return "system:serviceaccount:" + i.namespace + ":" + i.name }

// deployment returns a rendered Deployment in the install's namespace.
func deployment(t *testing.T, objs rendering, name string) object {
	t.Helper()
	d, ok := objs["apps/Deployment "+namespace+"/"+name]
	if !ok {
		t.Fatalf("the install renders no Deployment %s/%s", namespace, name)
	}
	return d
}

// serviceAccountOf is the rendered ServiceAccount a Deployment's pods run as.
func serviceAccountOf(t *testing.T, objs rendering, d object) identity {
	t.Helper()
	u := unstructured.Unstructured{Object: d}
	name, _, _ := unstructured.NestedString(u.Object, "spec", "template", "spec", "serviceAccountName")
	sa := identity{namespace: u.GetNamespace(), name: name}
	if _, ok := objs["core/ServiceAccount "+sa.namespace+"/"+sa.name]; !ok || name == "" {
		t.Fatalf("Deployment %s runs as ServiceAccount %q, which the install does not render", u.GetName(), name)
	}
	return sa
}

// containerArgs are the first container's args.
func containerArgs(d object) []string {
	cs, _, _ := unstructured.NestedSlice(d, "spec", "template", "spec", "containers")
	if len(cs) == 0 {
		return nil
	}
	args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
	return args
}

// flagOr is the value a Deployment gives a flag, or the flag's default.
func flagOr(d object, name, def string) string {
	for _, a := range containerArgs(d) {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return def
}

// checkWebhookServing checks what the skipped objects would do for the webhooks: the manager
// Deployment serves them on the port the webhook Service targets, from the Secret the
// cert-manager Certificate fills, mounted where the manager looks by default, and the
// Certificate names the Service.
func checkWebhookServing(t *testing.T, objs rendering, mgr object) {
	t.Helper()
	svc, ok := objs["core/Service "+namespace+"/webhook-service"]
	if !ok {
		t.Fatal("the install renders no webhook Service")
	}
	ports, _, _ := unstructured.NestedSlice(svc, "spec", "ports")
	if len(ports) != 1 {
		t.Fatalf("webhook Service ports: %v", ports)
	}
	target := fmt.Sprint(ports[0].(map[string]any)["targetPort"])
	if want := strconv.Itoa(webhook.DefaultPort); target != want || flagOr(mgr, "--webhook-port", want) != want {
		t.Errorf("the webhook Service targets port %s; the manager serves on %s", target, flagOr(mgr, "--webhook-port", want))
	}
	cert, ok := objs["cert-manager.io/Certificate "+namespace+"/roster-serving-cert"]
	if !ok {
		t.Fatal("the install renders no serving Certificate")
	}
	dns, _, _ := unstructured.NestedStringSlice(cert, "spec", "dnsNames")
	if !slices.Contains(dns, "webhook-service."+namespace+".svc") {
		t.Errorf("the serving Certificate's names %v leave out the Service the API server calls", dns)
	}
	secret, _, _ := unstructured.NestedString(cert, "spec", "secretName")
	spec, _, _ := unstructured.NestedMap(mgr, "spec", "template", "spec")
	mounted := ""
	for _, v := range spec["volumes"].([]any) {
		v := v.(map[string]any)
		if s, ok := v["secret"].(map[string]any); ok && s["secretName"] == secret {
			mounted = fmt.Sprint(v["name"])
		}
	}
	dir := ""
	for _, m := range spec["containers"].([]any)[0].(map[string]any)["volumeMounts"].([]any) {
		if m := m.(map[string]any); m["name"] == mounted {
			dir = fmt.Sprint(m["mountPath"])
		}
	}
	// controller-runtime's default webhook cert dir, used when --webhook-cert-dir is not set.
	want := flagOr(mgr, "--webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs")
	if mounted == "" || dir != want {
		t.Errorf("the manager mounts the Certificate's Secret %s at %q; it reads its serving certificate from %q", secret, dir, want)
	}
}

// skip says why an object is not applied, or "".
func skip(o object) string {
	switch group, _, _ := strings.Cut(fmt.Sprint(o["apiVersion"]), "/"); {
	case o["kind"] == "Deployment":
		return "its code runs in this test, as its ServiceAccount"
	case group == "cert-manager.io":
		return "no cert-manager: the test CA signs the webhooks' certificate"
	case group == "monitoring.coreos.com":
		return "no Prometheus Operator CRDs"
	}
	return ""
}

// applyOrder installs what others depend on first, as kubectl apply would have to.
var applyOrder = map[string]int{
	"Namespace": 0, "CustomResourceDefinition": 1, "ServiceAccount": 2, "ClusterRole": 3, "Role": 3,
	"ClusterRoleBinding": 4, "RoleBinding": 4, "MutatingWebhookConfiguration": 9, "ValidatingWebhookConfiguration": 9,
}

// apply server-side-applies every rendered object that can run here, waits for the CRDs to
// be established, and returns the ids of those it left out, with why.
func apply(ctx context.Context, t *testing.T, c client.Client, objs rendering, webhookHost string, ca []byte) []string {
	t.Helper()
	ids := objs.ids()
	sort.SliceStable(ids, func(i, j int) bool {
		return order(objs[ids[i]]) < order(objs[ids[j]])
	})
	var skipped []string
	for _, k := range ids {
		if why := skip(objs[k]); why != "" {
			skipped = append(skipped, k+" ("+why+")")
			continue
		}
		u := &unstructured.Unstructured{Object: deepCopy(objs[k])}
		if strings.HasSuffix(u.GetKind(), "WebhookConfiguration") {
			pointWebhooks(t, u, objs, webhookHost, ca)
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("install-test"), client.ForceOwnership); err != nil {
			t.Fatalf("apply %s: %v", k, err)
		}
		if u.GetKind() == "CustomResourceDefinition" {
			waitEstablished(ctx, t, c, u.GetName())
		}
	}
	return skipped
}

func order(o object) int {
	if n, ok := applyOrder[fmt.Sprint(o["kind"])]; ok {
		return n
	}
	return 5
}

func waitEstablished(ctx context.Context, t *testing.T, c client.Client, name string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		g.Expect(c.Get(ctx, client.ObjectKey{Name: name}, crd)).To(Succeed())
		established := false
		for _, c := range crd.Status.Conditions {
			established = established || c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue
		}
		g.Expect(established).To(BeTrue(), "CRD %s is not established", name)
	}, timeout, interval).Should(Succeed())
}

// pointWebhooks replaces each webhook's Service with a URL to this test's webhook server on
// the same path, and puts in the test CA; rules, failure policy, side effects, selectors and
// match policy stay as rendered. The Service must be one the install renders, on a port it
// serves.
func pointWebhooks(t *testing.T, u *unstructured.Unstructured, objs rendering, host string, ca []byte) {
	t.Helper()
	hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
	if len(hooks) == 0 {
		t.Fatalf("%s has no webhooks", u.GetName())
	}
	for _, h := range hooks {
		h := h.(map[string]any)
		cc, _ := h["clientConfig"].(map[string]any)
		svc, _ := cc["service"].(map[string]any)
		if svc == nil || len(cc) != 1 {
			t.Fatalf("webhook %s: clientConfig %v is not a Service alone", h["name"], cc)
		}
		ref := fmt.Sprintf("core/Service %s/%s", svc["namespace"], svc["name"])
		s, ok := objs[ref]
		if !ok {
			t.Fatalf("webhook %s calls %s, which the install does not render", h["name"], ref)
		}
		port := int64(443)
		if p, ok := svc["port"].(float64); ok {
			port = int64(p)
		}
		ports, _, _ := unstructured.NestedSlice(s, "spec", "ports")
		if !slices.ContainsFunc(ports, func(p any) bool { return p.(map[string]any)["port"] == float64(port) }) {
			t.Fatalf("webhook %s calls %s on port %d, which it does not serve", h["name"], ref, port)
		}
		path, _ := svc["path"].(string)
		h["clientConfig"] = map[string]any{"url": "https://" + host + path, "caBundle": base64.StdEncoding.EncodeToString(ca)}
	}
	if err := unstructured.SetNestedSlice(u.Object, hooks, "webhooks"); err != nil {
		t.Fatal(err)
	}
}

// tokenConfig authenticates as a ServiceAccount with a token from the TokenRequest API, as a
// pod's projected token does, and checks that the API server sees that identity.
func tokenConfig(ctx context.Context, t *testing.T, admin client.Client, cfg *rest.Config, sa identity) *rest.Config {
	t.Helper()
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	if err := admin.SubResource("token").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: sa.namespace, Name: sa.name}}, tr); err != nil {
		t.Fatalf("token for %s: %v", sa.user(), err)
	}
	c := rest.AnonymousClientConfig(cfg)
	c.BearerToken = tr.Status.Token
	who := &authenticationv1.SelfSubjectReview{}
	if err := mustClient(t, c).Create(ctx, who); err != nil {
		t.Fatalf("who am I, as %s: %v", sa.user(), err)
	}
	if who.Status.UserInfo.Username != sa.user() {
		t.Fatalf("the token authenticates as %q, not %s", who.Status.UserInfo.Username, sa.user())
	}
	return c
}

func mustClient(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	c, err := client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// impersonate acts as a person with no group but system:authenticated: only what RoleBindings
// give them.
func impersonate(t *testing.T, cfg *rest.Config, user string) client.Client {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user}
	return mustClient(t, c)
}

// bind grants a ClusterRole to a person in one namespace, as a namespace admin would.
func bind(ctx context.Context, t *testing.T, admin client.Client, ns, user, role string) {
	t.Helper()
	name, _, _ := strings.Cut(user, "@")
	if err := admin.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-" + role, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}); err != nil {
		t.Fatal(err)
	}
}

// startManager runs Roster's manager as cmd/manager does with the rendered Deployment's
// flags: leader election (in the install's namespace, which in a pod is the ServiceAccount's),
// metrics over HTTPS behind authentication, and the webhooks, here on the test's port and
// certificate. It returns the metrics address.
func startManager(ctx context.Context, t *testing.T, cfg *rest.Config, ns string, wh envtest.WebhookInstallOptions, allow notify.AllowList,
	trusted, portal string) string {
	t.Helper()
	metricsAddr := freeAddr(t)
	mgr, err := operator.NewManager(cfg, manager.Options{
		Metrics:                       operator.MetricsOptions(metricsAddr),
		HealthProbeBindAddress:        "0",
		LeaderElection:                true,
		LeaderElectionID:              operator.LeaderElectionID(""),
		LeaderElectionNamespace:       ns,
		LeaderElectionReleaseOnCancel: true,
		WebhookServer:                 webhook.NewServer(webhook.Options{Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir}),
		Controller:                    config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	if err := operator.Setup(ctx, mgr, operator.Options{
		Notifier:     notify.NewDispatcher(notify.DispatcherOptions{Logger: logf.Log.WithName("notify"), Allow: allow}),
		PortalURL:    "https://join.test",
		TrustedUsers: []string{trusted},
		PortalUsers:  []string{portal},
		RetryBackoff: func(int) time.Duration { return 200 * time.Millisecond },
		Webhooks:     true,
	}); err != nil {
		t.Fatalf("manager setup: %v", err)
	}
	run(ctx, t, "manager", mgr)
	select {
	case <-mgr.Elected():
	case <-time.After(timeout):
		t.Fatal("the manager did not start leading: it first waits for its caches to sync (may its ServiceAccount list and watch all it caches?), then for the Lease (may it write Leases in its namespace?)")
	}
	return metricsAddr
}

// startPortal runs what cmd/portal runs for the pages' data, a manager with no controllers
// but with the field indexes, and returns the acceptor the sign-up pages use on it.
func startPortal(ctx context.Context, t *testing.T, cfg *rest.Config) *membership.Acceptor {
	t.Helper()
	pm, err := operator.NewPortalManager(cfg, manager.Options{Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatalf("portal: %v", err)
	}
	if err := controllers.SetupIndexes(ctx, pm.GetFieldIndexer()); err != nil {
		t.Fatal(err)
	}
	run(ctx, t, "portal", pm)
	if !pm.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("the portal's cache did not sync: can its ServiceAccount list and watch what it reads?")
	}
	return &membership.Acceptor{Client: pm.GetClient(), APIReader: pm.GetAPIReader(), Clock: clock.RealClock{}}
}

// run starts a manager and stops it, and waits for it, when the test ends.
func run(ctx context.Context, t *testing.T, name string, mgr manager.Manager) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(timeout):
			// controller-runtime's manager does not return from Start while it waits for
			// caches that cannot sync (an identity that may not list what it caches).
			t.Errorf("%s: did not stop within %s; left running", name, timeout)
		}
	})
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitWebhooks waits until the API server reaches the webhook server through the applied
// configurations, so that the first write of the test is not refused.
func waitWebhooks(ctx context.Context, t *testing.T, admin client.Client) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		return admin.Create(ctx, &rosterv1.Organization{
			ObjectMeta: metav1.ObjectMeta{Name: "warmup", Namespace: "default"},
			Spec:       rosterv1.OrganizationSpec{DisplayName: "warmup"},
		}, client.DryRunAll)
	}, timeout, interval).Should(Succeed())
}

// smtpSecret starts a mail server on loopback and puts its address and credentials where
// an Organization's spec.notifications.email names them, and its templates ConfigMap, as the
// cluster's admin does (roster-admin gives no Secrets or ConfigMaps).
func smtpSecret(ctx context.Context, t *testing.T, admin client.Client, ns string) *mailsink.Server {
	t.Helper()
	sink, err := mailsink.Start(mailsink.Options{TLS: mailsink.TLSStartTLS, Username: "roster", Password: "s3cret-pass"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	// The Organization's own wording, which the manager reads when it renders a message.
	if err := admin.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "templates", Namespace: ns},
		Data:       map[string]string{"invitation-email.subject.tmpl": "{{.OrganizationName}} has a place for you"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "smtp", Namespace: ns, Labels: map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster}},
		StringData: map[string]string{
			"host": sink.Host(), "port": strconv.Itoa(sink.Port()), "tls": "starttls",
			"username": "roster", "password": "s3cret-pass", "caBundle": string(sink.CertificatePEM()),
		},
	}); err != nil {
		t.Fatal(err)
	}
	return sink
}

func mailsTo(sink *mailsink.Server, addr string) []mailsink.Mail {
	var out []mailsink.Mail
	for _, m := range sink.Messages() {
		if slices.ContainsFunc(m.To, func(to string) bool { return strings.EqualFold(to, addr) }) {
			out = append(out, m)
		}
	}
	return out
}

func waitReady(ctx context.Context, t *testing.T, c client.Client, org *rosterv1.Organization) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(org.Status.Conditions, rosterv1.ConditionReady)).To(BeTrue(), "%v", org.Status.Conditions)
		g.Expect(org.Status.PublicLinkSecretRef).NotTo(BeNil())
	}, timeout, interval).Should(Succeed())
}

func waitMember(ctx context.Context, t *testing.T, c client.Client, m *rosterv1.Member, phase rosterv1.MemberPhase) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
		g.Expect(m.Status.Phase).To(Equal(phase), "%v", m.Status.Conditions)
	}, timeout, interval).Should(Succeed())
}

// blocksDeletionOf says whether o is controlled by owner with blockOwnerDeletion.
func blocksDeletionOf(o, owner client.Object) bool {
	ref := metav1.GetControllerOf(o)
	return ref != nil && ref.UID == owner.GetUID() && ptr.Deref(ref.BlockOwnerDeletion, false)
}

// rbacForbidden says whether err is RBAC's refusal of verb on resource to user (and not a
// webhook's).
func rbacForbidden(err error, user, verb, resource string) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), fmt.Sprintf("User %q cannot %s resource %q", user, verb, resource))
}

// scrape reads the manager's metrics as a ServiceAccount bound to the rendered
// roster-metrics-reader (as Prometheus's would be), and checks that an unauthenticated
// scraper and an authenticated one without the role are refused.
func scrape(ctx context.Context, t *testing.T, admin client.Client, cfg *rest.Config, addr string, unbound identity) {
	t.Helper()
	g := NewWithT(t)
	prom := identity{namespace: "monitoring", name: "prometheus"}
	g.Expect(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prom.namespace}})).To(Succeed())
	g.Expect(admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: prom.namespace, Name: prom.name}})).To(Succeed())
	g.Expect(admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-roster-metrics"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "roster-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: prom.namespace, Name: prom.name}},
	})).To(Succeed())
	get := func(token string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
		g.Expect(err).NotTo(HaveOccurred())
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		// The metrics server's certificate is self-signed here; in a cluster the ServiceMonitor
		// says how to trust it.
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test
		resp, err := hc.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	token := tokenConfig(ctx, t, admin, cfg, prom).BearerToken
	g.Eventually(func(g Gomega) {
		code, body := get(token)
		g.Expect(code).To(Equal(http.StatusOK), body)
		for _, want := range []string{
			`roster_invitations{namespace="acme",organization="acme",phase="Accepted"} 1`,
			`roster_deliveries_total{channel="email",result="sent"} `, // Mia's invitation, and what else the flow mails
			`roster_members_awaiting_approval{namespace="acme",organization="acme"} 0`,
		} {
			g.Expect(strings.Contains(body, want)).To(BeTrue(), "the metrics lack %s; Roster's are:\n%s", want, rosterMetrics(body))
		}
	}, timeout, interval).Should(Succeed())
	code, _ := get("")
	g.Expect(code).To(Equal(http.StatusUnauthorized), "an unauthenticated scrape")
	code, _ = get(tokenConfig(ctx, t, admin, cfg, unbound).BearerToken)
	g.Expect(code).To(Equal(http.StatusForbidden), "a scrape by %s, which is not bound to roster-metrics-reader", unbound.user())
}

// userRolesAggregate checks that the shipped user roles carry the labels the API server's
// own admin, edit and view select, and that once aggregated (the job of
// kube-controller-manager's clusterrole-aggregation controller, which envtest does not run)
// a namespace's edit binding gives roster-editor's rights and no more.
func userRolesAggregate(ctx context.Context, t *testing.T, admin client.Client, objs rendering, asEve client.Client, ns string) {
	g := NewWithT(t)
	into := map[string]string{"roster-admin": "admin", "roster-editor": "edit", "roster-viewer": "view"}
	for role, builtin := range into {
		if _, ok := objs["rbac.authorization.k8s.io/ClusterRole /"+role]; !ok {
			t.Errorf("the install renders no ClusterRole %s", role)
			continue
		}
		r, b := &rbacv1.ClusterRole{}, &rbacv1.ClusterRole{}
		g.Expect(admin.Get(ctx, client.ObjectKey{Name: role}, r)).To(Succeed())
		g.Expect(admin.Get(ctx, client.ObjectKey{Name: builtin}, b)).To(Succeed())
		g.Expect(b.AggregationRule).NotTo(BeNil())
		g.Expect(selects(t, b.AggregationRule, r)).To(BeTrue(), "%s's labels %v are not selected by %s's aggregation rule", role, r.Labels, builtin)
		// Each takes only its own: the built-in roles include each other (view is labelled into
		// edit, edit into admin), not Roster's roles meant for another.
		for other := range into {
			if other != role {
				g.Expect(selects(t, b.AggregationRule, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Labels: objLabels(objs, other)}})).To(BeFalse(),
					"%s's aggregation takes %s too", builtin, other)
			}
		}
	}

	edit := &rbacv1.ClusterRole{}
	g.Expect(admin.Get(ctx, client.ObjectKey{Name: "edit"}, edit)).To(Succeed())
	if grants(edit.Rules, rosterv1.GroupVersion.Group) {
		t.Log("edit already holds Roster's rules: the API server aggregated them")
	} else {
		t.Log("the edit ClusterRole holds no org.roster.dev rules: envtest runs no kube-controller-manager, so nothing aggregates " +
			"ClusterRoles; aggregating them here as its clusterrole-aggregation controller would")
		all := &rbacv1.ClusterRoleList{}
		g.Expect(admin.List(ctx, all)).To(Succeed())
		var rules []rbacv1.PolicyRule
		for _, r := range all.Items {
			if r.Name != edit.Name && selects(t, edit.AggregationRule, &r) {
				rules = append(rules, r.Rules...)
			}
		}
		edit.Rules = rules
		g.Expect(admin.Update(ctx, edit)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		g.Expect(asEve.List(ctx, &rosterv1.InvitationList{}, client.InNamespace(ns))).To(Succeed())
	}, timeout, interval).Should(Succeed(), "an edit binding gives roster-editor's reads")
	eve := "eve@acme.example"
	for _, c := range []struct {
		verb, resource string
		allowed        bool
	}{
		{"create", "invitations", true}, {"patch", "members", true}, {"delete", "collaborations", true},
		{"get", "organizations", true}, {"create", "organizations", false}, {"delete", "organizations", false},
		{"update", "members/status", false}, {"create", "claims", false},
	} {
		g.Expect(may(ctx, t, admin, eve, ns, c.verb, c.resource)).To(Equal(c.allowed), "%s %s %s", eve, c.verb, c.resource)
	}
	err := asEve.Create(ctx, &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "eves", Namespace: ns}, Spec: rosterv1.OrganizationSpec{DisplayName: "Eve's"}})
	g.Expect(rbacForbidden(err, eve, "create", "organizations")).To(BeTrue(), "%v", err)
}

// rosterMetrics are the lines of an exposition that name Roster's own metrics.
func rosterMetrics(body string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "roster_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func objLabels(objs rendering, role string) map[string]string {
	u := unstructured.Unstructured{Object: objs["rbac.authorization.k8s.io/ClusterRole /"+role]}
	return u.GetLabels()
}

func selects(t *testing.T, rule *rbacv1.AggregationRule, r *rbacv1.ClusterRole) bool {
	for _, s := range rule.ClusterRoleSelectors {
		sel, err := metav1.LabelSelectorAsSelector(&s)
		if err != nil {
			t.Fatal(err)
		}
		if sel.Matches(labels.Set(r.Labels)) {
			return true
		}
	}
	return false
}

func grants(rules []rbacv1.PolicyRule, group string) bool {
	return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool { return slices.Contains(r.APIGroups, group) })
}

// may asks the API server whether user may do verb on resource in ns.
func may(ctx context.Context, t *testing.T, admin client.Client, user, ns, verb, resource string) bool {
	t.Helper()
	res, sub, _ := strings.Cut(resource, "/")
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               user,
		Groups:             []string{"system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: rosterv1.GroupVersion.Group, Resource: res, Subresource: sub},
	}}
	if err := admin.Create(ctx, sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}

// finalizerCase shows why the manager's ClusterRole grants one owner kind's finalizers: a
// tenant's step after which the manager makes an object that owner owns, with
// blockOwnerDeletion, which OwnerReferencesPermissionEnforcement allows only to who may
// update the owner's finalizers.
type finalizerCase struct {
	resource string // in the */finalizers rule
	// act is the tenant's step.
	act func(ctx context.Context, c client.Client) error
	// owned is the name of what the manager then makes, as the API server's refusal names it.
	owned string
	// done checks that the step took effect; it must not without the rule.
	done func(ctx context.Context, g Gomega, c client.Client)
}

// withoutFinalizersRule takes each resource of the */finalizers rule in turn out of the
// applied manager ClusterRole and shows, with OwnerReferencesPermissionEnforcement on, the
// tenant's flow that needs it stop on the API server's refusal, and go on once it is back.
// Every resource of the rule needs such a case: one without is more than the manager needs.
func withoutFinalizersRule(ctx context.Context, t *testing.T, admin client.Client, mgrCfg *rest.Config, asAda client.Client, logs *logBuffer) {
	g := NewWithT(t)
	const ns, ada = "beta", "ada@acme.example"
	g.Expect(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	bind(ctx, t, admin, ns, ada, "roster-admin")
	cases := []finalizerCase{{
		resource: "organizations/finalizers",
		act: func(ctx context.Context, c client.Client) error {
			return c.Create(ctx, &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "beta", Namespace: ns},
				Spec: rosterv1.OrganizationSpec{DisplayName: "Beta", Admins: []rosterv1.Subject{{Kind: "User", Name: ada}},
					PublicInvitation: rosterv1.PublicInvitation{Enabled: true},
					Applications:     []rosterv1.Application{{Name: "support", Portal: rosterv1.Portal{Enabled: true}, License: rosterv1.License{Seats: 5}}}}})
		},
		owned: "beta-public-link",
		done: func(ctx context.Context, g Gomega, c client.Client) {
			org := &rosterv1.Organization{}
			g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "beta"}, org)).To(Succeed())
			g.Expect(org.Status.PublicLinkSecretRef).NotTo(BeNil())
			g.Expect(meta.IsStatusConditionTrue(org.Status.Conditions, rosterv1.ConditionReady)).To(BeTrue())
		},
	}, {
		resource: "invitations/finalizers",
		act: func(ctx context.Context, c client.Client) error {
			return c.Create(ctx, &rosterv1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "ivy", Namespace: ns},
				Spec: rosterv1.InvitationSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "beta"},
					Method: rosterv1.InvitationMethodLink, Invitee: rosterv1.Invitee{Name: "Ivy"}}})
		},
		owned: "ivy", // the invited Member, named after its Invitation
		done: func(ctx context.Context, g Gomega, c client.Client) {
			inv := &rosterv1.Invitation{}
			g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ivy"}, inv)).To(Succeed())
			g.Expect(inv.Status.Phase).To(Equal(rosterv1.InvitationSent))
		},
	}, {
		resource: "externalusers/finalizers",
		act: func(ctx context.Context, c client.Client) error {
			return c.Create(ctx, &rosterv1.ExternalUser{ObjectMeta: metav1.ObjectMeta{Name: "xena", Namespace: ns},
				Spec: rosterv1.ExternalUserSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "beta"}, Application: "support",
					DisplayName: "Xena", Approval: rosterv1.ApprovalApproved}})
		},
		owned: "xena-portal-link", // her individual link's Secret
		done: func(ctx context.Context, g Gomega, c client.Client) {
			x := &rosterv1.ExternalUser{}
			g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "xena"}, x)).To(Succeed())
			g.Expect(x.Status.LinkSecretRef).NotTo(BeNil())
		},
	}}

	shipped := &rbacv1.ClusterRole{}
	g.Expect(admin.Get(ctx, client.ObjectKey{Name: "roster-manager"}, shipped)).To(Succeed())
	rule := slices.IndexFunc(shipped.Rules, func(r rbacv1.PolicyRule) bool {
		return slices.ContainsFunc(r.Resources, func(res string) bool { return strings.HasSuffix(res, "/finalizers") })
	})
	g.Expect(rule).NotTo(Equal(-1), "the manager's ClusterRole has no */finalizers rule")
	granted := slices.Sorted(slices.Values(shipped.Rules[rule].Resources))
	var shown []string
	for _, c := range cases {
		shown = append(shown, c.resource)
	}
	slices.Sort(shown)
	g.Expect(granted).To(Equal(shown), "every resource of the manager's */finalizers rule, and only those, needs a case here "+
		"showing the controllers make what it owns (controllers/doc.go has the rule's marker)")

	// setRule gives the manager's ClusterRole the */finalizers rule with these resources, and
	// waits until the authorizer has seen the change.
	mgr := mustClient(t, mgrCfg)
	setRule := func(resources []string) {
		t.Helper()
		g.Eventually(func() error {
			role := &rbacv1.ClusterRole{}
			if err := admin.Get(ctx, client.ObjectKey{Name: "roster-manager"}, role); err != nil {
				return err
			}
			role.Rules[rule].Resources = resources
			return admin.Update(ctx, role)
		}, timeout, interval).Should(Succeed())
		for _, res := range granted {
			resource, sub, _ := strings.Cut(res, "/")
			g.Eventually(func() bool {
				ssar := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: "update", Group: rosterv1.GroupVersion.Group, Resource: resource, Subresource: sub, Namespace: ns}}}
				g.Expect(mgr.Create(ctx, ssar)).To(Succeed())
				return ssar.Status.Allowed
			}, timeout, interval).Should(Equal(slices.Contains(resources, res)), "the manager may update %s", res)
		}
	}
	t.Cleanup(func() { setRule(granted) })

	const refusal = "cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set finalizers on"
	for _, c := range cases {
		step(t, "without "+c.resource)
		setRule(slices.DeleteFunc(slices.Clone(granted), func(r string) bool { return r == c.resource }))
		g.Expect(c.act(ctx, asAda)).To(Succeed())
		var line string
		g.Eventually(func() string { line = logLine(logs.String(), `\"`+c.owned+`\" is forbidden: `+refusal); return line }, timeout, interval).
			ShouldNot(BeEmpty(), "the API server should refuse the manager %s", c.owned)
		t.Logf("refused: %s", line)
		g.Consistently(func(g Gomega) { c.done(ctx, g, admin) }, time.Second, 100*time.Millisecond).ShouldNot(Succeed(),
			"the step took effect without %s", c.resource)
		setRule(granted)
		g.Eventually(func(g Gomega) { c.done(ctx, g, admin) }, timeout, interval).Should(Succeed(), "with %s back", c.resource)
	}
}

// logLine is the first line of log that contains s, from its error field on, or "".
func logLine(log, s string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			if i := strings.Index(l, `"error"`); i >= 0 {
				return l[i:]
			}
			return l
		}
	}
	return ""
}

// captureLogs keeps the controllers' log, shows its end when the test fails, and lets a
// test look for what the manager logged.
func captureLogs(t *testing.T) *logBuffer {
	b := &logBuffer{}
	logf.SetLogger(zap.New(zap.WriteTo(b), zap.UseDevMode(true)))
	t.Cleanup(func() {
		if t.Failed() {
			s := b.String()
			if len(s) > 20000 {
				s = "…" + s[len(s)-20000:]
			}
			t.Logf("controller log:\n%s", s)
		}
	})
	return b
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
