package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/bulk"
	"github.com/roster-dev/roster/internal/testenv"
	"github.com/roster-dev/roster/internal/testenv/rig"
)

// TestAgainstAPIServer runs the plugin the way kubectl does, with --kubeconfig and -n, against
// a real API server, to prove the connection flags reach the cluster and the namespace.
func TestAgainstAPIServer(t *testing.T) {
	env := testenv.New(false)
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	user, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigFile := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfigFile, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}

	c, err := client.New(cfg, client.Options{Scheme: rig.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "plugin-"}}
	if err := c.Create(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	org := &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "acme"},
		Spec: rosterv1.OrganizationSpec{DisplayName: "Acme"}}
	if err := c.Create(t.Context(), org); err != nil {
		t.Fatal(err)
	}

	out, _, err := run(nil, string(bulk.Template()), "--kubeconfig", kubeconfigFile, "-n", ns.Name,
		"import", "-f", "-", "--org", "acme")
	if err != nil || !strings.Contains(out, "1 rows: 1 created\n") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	inv := &rosterv1.Invitation{}
	key := client.ObjectKey{Namespace: ns.Name, Name: bulk.ImportedInvitationName("acme", "bob@acme.example", "")}
	if err := c.Get(t.Context(), key, inv); err != nil {
		t.Fatalf("the imported invitation is not in namespace %s: %v", ns.Name, err)
	}

	out, _, err = run(nil, "", "--kubeconfig", kubeconfigFile, "-n", ns.Name, "resend", "-l", rosterv1.LabelSource+"="+rosterv1.SourceImport)
	if err != nil || !strings.Contains(out, "resendRequests 0 → 1") {
		t.Fatalf("resend: %v\n%s", err, out)
	}
}
