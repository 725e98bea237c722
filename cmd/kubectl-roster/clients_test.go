package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/controllers"
	"github.com/roster-dev/roster/internal/bulk"
	"github.com/roster-dev/roster/internal/operator"
	"github.com/roster-dev/roster/internal/testenv"
	webhookv1alpha1 "github.com/roster-dev/roster/internal/webhook/v1alpha1"
)

// webhookEnv is a control plane whose API server calls Roster's admission webhooks, served
// from this process with no controllers, holding the sample organization acme.
type webhookEnv struct {
	ns         string
	kubeconfig string
	// roster writes as Roster's manager: what controllers would write, status among it.
	roster client.Client
}

const managerUser = "roster-manager"

func startWebhookEnv(t *testing.T) *webhookEnv {
	t.Helper()
	env := testenv.New(true)
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	mgrUser, err := env.AddUser(envtest.User{Name: managerUser, Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	opts := env.WebhookInstallOptions
	mgr, err := operator.NewManager(mgrUser.Config(), manager.Options{
		Metrics:       metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{Host: opts.LocalServingHost, Port: opts.LocalServingPort, CertDir: opts.LocalServingCertDir}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := controllers.SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		t.Fatal(err)
	}
	if err := webhookv1alpha1.Setup(mgr, webhookv1alpha1.Options{TrustedUsers: []string{managerUser}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// The plugin connects as cluster admin and acts as alice, a Super Admin of acme, by
	// impersonation, the way an admin's kubeconfig would make it.
	admin, err := env.AddUser(envtest.User{Name: "cluster-admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	e := &webhookEnv{kubeconfig: filepath.Join(t.TempDir(), "kubeconfig")}
	if err := os.WriteFile(e.kubeconfig, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	if e.roster, err = client.New(mgrUser.Config(), client.Options{Scheme: operator.NewScheme()}); err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "plugin-"}}
	if err := e.roster.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	e.ns = ns.Name

	// The samples, as they are but for the license, which must not expire under the test.
	org := &rosterv1.Organization{}
	readSample(t, "org_v1alpha1_organization.yaml", org)
	org.Namespace = e.ns
	org.Spec.Applications[0].License.ExpiresAt = &metav1.Time{Time: time.Now().Add(365 * 24 * time.Hour)}
	dana := &rosterv1.Member{}
	readSample(t, "org_v1alpha1_member.yaml", dana)
	dana.Namespace = e.ns
	// Wait until the webhooks answer: the first requests may come before the server is up.
	var lastErr error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if lastErr = e.roster.Create(ctx, org.DeepCopy(), client.DryRunAll); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("the webhooks do not answer: %v", lastErr)
	}
	for _, o := range []client.Object{org, dana} {
		if err := e.roster.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	dana.Status.Phase, dana.Status.UsernameClaimed = rosterv1.MemberActive, true
	if err := e.roster.Status().Update(ctx, dana); err != nil {
		t.Fatal(err)
	}
	// The webhooks read members from the manager's cache.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		m := &rosterv1.Member{}
		if err := mgr.GetClient().Get(ctx, client.ObjectKeyFromObject(dana), m); err == nil && m.Status.UsernameClaimed {
			break
		}
	}
	return e
}

func readSample(t *testing.T, name string, into any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatal(err)
	}
}

// plugin runs the plugin as user against the environment, with errOut as its standard error.
func (e *webhookEnv) plugin(errOut io.Writer, user string, args ...string) (string, error) {
	var out bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: errOut}
	cmd := newRootCommand(streams, nil)
	cmd.SetArgs(append([]string{"--kubeconfig", e.kubeconfig, "-n", e.ns, "--as", user, "--as-group", "system:masters"}, args...))
	err := cmd.Execute()
	return out.String(), err
}

func (e *webhookEnv) externalUsers(t *testing.T) []rosterv1.ExternalUser {
	t.Helper()
	list := &rosterv1.ExternalUserList{}
	if err := e.roster.List(context.Background(), list, client.InNamespace(e.ns)); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func writeClients(t *testing.T, from, to int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("firstName,lastName,email,phone,role,team\n")
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "Client,%d,client%d@partner.example,,Buyer,dana@acme.example\n", i, i)
	}
	file := filepath.Join(t.TempDir(), fmt.Sprintf("clients-%d-%d.csv", from, to))
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

const alice = "alice@acme.example"

// TestClientsAsAdmin runs the plugin as an admin of the sample organization against an API
// server that calls Roster's admission webhooks: the daily import quota, the admins-only
// rule for external users and dry runs are the real ones.
func TestClientsAsAdmin(t *testing.T) {
	e := startWebhookEnv(t)
	ctx := context.Background()

	t.Run("a dry run creates nothing and uses no quota", func(t *testing.T) {
		out, err := e.plugin(io.Discard, alice, "import", "clients", "-f", writeClients(t, 0, 60), "--application", "support-portal", "--dry-run=server")
		if err != nil || !strings.Contains(out, "60 rows: 60 created (dry run: nothing was stored)") {
			t.Fatalf("dry run: %v\n%s", err, out)
		}
		if n := len(e.externalUsers(t)); n != 0 {
			t.Fatalf("%d external users after a dry run", n)
		}
	})

	file := writeClients(t, 0, 60)
	t.Run("the daily quota stops an import, which says what went in and how to go on", func(t *testing.T) {
		// The sample organization allows 50 imports a day.
		out, err := e.plugin(io.Discard, alice, "import", "clients", "-f", file, "--application", "support-portal")
		if err == nil || err.Error() != "10 of 60 rows were not imported" {
			t.Fatalf("import: %v\n%s", err, out)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`60 rows: 50 created, 10 failed\n`),
			regexp.MustCompile(`The daily import quota stopped the import at line \d+:\n  .*QuotaExceeded: alice@acme.example created 50 invitations in the last 24 hours, the Free plan's limit of 50 a day`),
			regexp.MustCompile(`In: 50 rows \(lines [-0-9, ]+\)\. Not imported: 10 rows \(lines [-0-9, ]+\)\.`),
			regexp.MustCompile(`run the same command again after \d{4}-\d\d-\d\d \d\d:\d\d UTC:\n  kubectl roster import clients --application=support-portal --as=alice@acme.example --as-group=system:masters --filename=\S+ --kubeconfig=\S+ --namespace=plugin-\w+\n`),
			regexp.MustCompile(`Rows already in are recognised and not created twice`),
		} {
			if !want.MatchString(out) {
				t.Errorf("output does not match %s:\n%s", want, out)
			}
		}
		if n := len(e.externalUsers(t)); n != 50 {
			t.Fatalf("%d external users, want 50", n)
		}
	})

	t.Run("the next run goes on where the quota stopped and creates nothing twice", func(t *testing.T) {
		// As if the day were over: an admin raises the quota.
		patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"plan":"Paid","importQuota":null}}`))
		if err := e.roster.Patch(ctx, &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "acme"}}, patch); err != nil {
			t.Fatal(err)
		}
		out, err := e.plugin(io.Discard, alice, "import", "clients", "-f", file, "--application", "support-portal")
		if err != nil || !strings.Contains(out, "60 rows: 10 created, 50 unchanged\n") {
			t.Fatalf("import: %v\n%s", err, out)
		}
		if n := len(e.externalUsers(t)); n != 60 {
			t.Fatalf("%d external users, want 60", n)
		}
	})

	t.Run("progress shows on a terminal", func(t *testing.T) {
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer ptmx.Close()
		var terminal bytes.Buffer
		read := make(chan struct{})
		go func() { _, _ = io.Copy(&terminal, ptmx); close(read) }()
		out, err := e.plugin(tty, alice, "import", "clients", "-f", writeClients(t, 100, 400), "--application", "support-portal")
		_ = tty.Close()
		<-read
		if err != nil || !strings.Contains(out, "300 rows: 300 created\n") {
			t.Fatalf("import: %v\n%s", err, out)
		}
		if s := terminal.String(); !strings.Contains(s, "importing") || !strings.Contains(s, "100%") || !strings.Contains(s, "300/300") {
			t.Errorf("no progress bar on the terminal:\n%q", s)
		}

		var plain bytes.Buffer
		out, err = e.plugin(&plain, alice, "import", "clients", "-f", writeClients(t, 400, 600), "--application", "support-portal")
		if err != nil || !strings.Contains(out, "200 rows: 200 created\n") {
			t.Fatalf("import: %v\n%s", err, out)
		}
		if !strings.Contains(plain.String(), "imported 20 of 200 rows\n") || !strings.Contains(plain.String(), "imported 200 of 200 rows\n") ||
			strings.Contains(plain.String(), "\r") {
			t.Errorf("progress off a terminal is not plain lines:\n%q", plain.String())
		}
	})

	t.Run("find, lock as admin, and not as anyone else", func(t *testing.T) {
		out, err := e.plugin(io.Discard, alice, "users", "--application", "support-portal", "--search", "client42@", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Kind  string                  `json:"kind"`
			Items []rosterv1.ExternalUser `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil || list.Kind != "List" || len(list.Items) != 1 ||
			list.Items[0].Spec.Email != "client42@partner.example" || list.Items[0].Kind != "ExternalUser" {
			t.Fatalf("users -o json: %v\n%s", err, out)
		}
		name := list.Items[0].Name

		out, err = e.plugin(io.Discard, alice, "users", "--application", "support-portal", "--search", "client42@")
		if err != nil || !regexp.MustCompile(`(?m)^NAME\s+DISPLAY NAME\s+EMAIL\s+PHONE\s+COMPANY\s+STATUS\s+SIGNED UP\s+LAST LOGIN\n`+name+`\s+Client 42\s+client42@partner.example\s+-`).MatchString(out) {
			t.Fatalf("users: %v\n%s", err, out)
		}

		out, err = e.plugin(io.Discard, "mallory@elsewhere.example", "users", "lock", name)
		if err == nil || !strings.Contains(out, "only admins of Organization acme change external users") {
			t.Fatalf("lock by a stranger: %v\n%s", err, out)
		}
		out, err = e.plugin(io.Discard, alice, "users", "lock", name, "--dry-run=server")
		if err != nil || !strings.Contains(out, `access "Enabled" → "Locked"`) || !strings.Contains(out, "(dry run: nothing was stored)") {
			t.Fatalf("lock --dry-run=server: %v\n%s", err, out)
		}
		out, err = e.plugin(io.Discard, alice, "users", "disable", name)
		if err != nil || !strings.Contains(out, "1 external users: 1 changed\n") {
			t.Fatalf("disable: %v\n%s", err, out)
		}
		x := &rosterv1.ExternalUser{}
		if err := e.roster.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: name}, x); err != nil || x.Spec.Access != rosterv1.ExternalAccessLocked {
			t.Fatalf("access %q, %v", x.Spec.Access, err)
		}
	})

	t.Run("export clients imports back", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "export.csv")
		var errOut bytes.Buffer
		if _, err := e.plugin(&errOut, alice, "export", "clients", "--application", "support-portal", "-o", file); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(errOut.String(), "exported 560 external users to ") {
			t.Errorf("export said %q", errOut.String())
		}
		out, err := e.plugin(io.Discard, alice, "import", "clients", "-f", file, "--application", "support-portal")
		if err != nil || !strings.Contains(out, "560 rows: 0 created, 560 unchanged\n") {
			t.Fatalf("re-import of the export: %v\n%s", err, out[max(0, len(out)-300):])
		}
	})

	t.Run("link prints the current link", func(t *testing.T) {
		name := bulk.ImportedClientName("acme", "support-portal", "client1@partner.example", "")
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name + "-portal-link"},
			Data: map[string][]byte{"link": []byte("https://join.acme.example/portal/t0k3n")}}
		if err := e.roster.Create(ctx, sec); err != nil {
			t.Fatal(err)
		}
		x := &rosterv1.ExternalUser{}
		if err := e.roster.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: name}, x); err != nil {
			t.Fatal(err)
		}
		x.Status.LinkSecretRef = &rosterv1.LocalObjectReference{Name: sec.Name}
		if err := e.roster.Status().Update(ctx, x); err != nil {
			t.Fatal(err)
		}
		out, err := e.plugin(io.Discard, alice, "users", "link", name)
		if err != nil || !regexp.MustCompile(name+`\s+https://join.acme.example/portal/t0k3n\s+-\n`).MatchString(out) {
			t.Fatalf("link: %v\n%s", err, out)
		}
		out, err = e.plugin(io.Discard, alice, "users", "relink", name)
		if err != nil || !strings.Contains(out, "invitation.linkGeneration 0 → 1") {
			t.Fatalf("relink: %v\n%s", err, out)
		}
		out, err = e.plugin(io.Discard, alice, "users", "link", name)
		if err == nil || strings.Contains(out, "t0k3n") {
			t.Fatalf("link after relink still gives the old link: %v\n%s", err, out)
		}
	})
}
