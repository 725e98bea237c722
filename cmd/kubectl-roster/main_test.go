package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/bulk"
)

// These tests cover the command line: flags, output and exit status. The operations
// themselves are tested against a real API server in internal/bulk; here a fake client
// stands in for the cluster.

const ns = "acme-ns"

func newFakeClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := rosterv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	org := &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme"},
		Spec: rosterv1.OrganizationSpec{DisplayName: "Acme"}}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(append(objs, org)...).
		WithStatusSubresource(&rosterv1.Member{}, &rosterv1.Invitation{}).Build()
}

// run runs the plugin with args against c and returns what it printed and its error, which
// main turns into exit status 1. A nil c connects the way the plugin does, from the
// kubeconfig and flags.
func run(c client.Client, stdin string, args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}
	var connect connectFunc
	if c != nil {
		connect = func() (client.Client, string, error) { return c, ns, nil }
	}
	cmd := newRootCommand(streams, connect)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func countInvitations(t *testing.T, c client.Client) int {
	t.Helper()
	list := &rosterv1.InvitationList{}
	if err := c.List(t.Context(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}

func TestTemplate(t *testing.T) {
	out, _, err := run(nil, "", "template")
	if err != nil || out != string(bulk.Template()) {
		t.Fatalf("template printed %q, %v; want the template", out, err)
	}
	file := filepath.Join(t.TempDir(), "people.csv")
	if _, _, err := run(nil, "", "template", "-o", file); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(file); err != nil || !bytes.Equal(b, bulk.Template()) {
		t.Fatalf("template file has %q, %v", b, err)
	}
}

func TestImport(t *testing.T) {
	c := newFakeClient(t)
	file := filepath.Join(t.TempDir(), "people.csv")
	csv := "name,email,phone,department,position,workNumber,location,role\n" +
		"Bob,bob@acme.example,,,,,,\n" +
		"Carol,,+4915112345678,,,,,\n"
	if err := os.WriteFile(file, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}

	out, _, err := run(c, "", "import", "-f", file, "--org", "acme")
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	for _, want := range []string{"LINE", "bob@acme.example", bulk.ImportedInvitationName("acme", "bob@acme.example", ""),
		"+4915112345678", "2 rows: 2 created\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := countInvitations(t, c); n != 2 {
		t.Fatalf("%d invitations, want 2", n)
	}

	// The same file again, from standard input: nobody is invited twice, and that is fine.
	out, _, err = run(c, csv, "import", "-f", "-", "--org", "acme")
	if err != nil || !strings.Contains(out, "2 rows: 0 created, 2 skipped\n") {
		t.Fatalf("re-import: %v\n%s", err, out)
	}
}

func TestImportFailsOnBadRows(t *testing.T) {
	c := newFakeClient(t)
	csv := "name,email,phone,department,position,workNumber,location,role\n" +
		"Bob,bob@acme.example,,,,,,\n" +
		"Nobody,,,,,,,\n"

	_, _, err := run(c, csv, "import", "-f", "-", "--org", "acme")
	if err == nil || !strings.Contains(err.Error(), "line 3: needs an email or a phone") {
		t.Fatalf("import of a bad file: %v, want line 3 named", err)
	}
	if n := countInvitations(t, c); n != 0 {
		t.Fatalf("%d invitations from a bad file, want none", n)
	}

	out, _, err := run(c, csv, "import", "-f", "-", "--org", "acme", "--skip-invalid")
	if err == nil || err.Error() != "1 of 2 rows were not imported" {
		t.Fatalf("--skip-invalid: %v, want a failure for the bad row", err)
	}
	if !strings.Contains(out, "2 rows: 1 created, 1 invalid\n") {
		t.Errorf("output:\n%s", out)
	}
}

func TestSelectionFlags(t *testing.T) {
	c := newFakeClient(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"approve"}, "give names, -l SELECTOR or --from-department"},
		{[]string{"resend", "bob", "-l", "a=b"}, "not both"},
		{[]string{"edit", "--org", "acme", "bob"}, "nothing to change"},
		{[]string{"edit", "bob", "--position", "x"}, `required flag(s) "org" not set`},
		{[]string{"import", "-f", "x.csv"}, `required flag(s) "org" not set`},
		{[]string{"export", "--org", "acme", "--phase", "Approved"}, `unknown phase "Approved"`},
	} {
		if _, _, err := run(c, "", tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.want)
		}
	}
}

func TestApproveReportsEachMemberAndFails(t *testing.T) {
	bob := &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bob"},
		Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Username: "bob"}}
	c := newFakeClient(t, bob)

	out, _, err := run(c, "", "approve", "bob", "ghost")
	if err == nil || err.Error() != "1 of 2 members failed" {
		t.Fatalf("approve: %v, want a failure for ghost", err)
	}
	for _, want := range []string{`bob    changed  approval "" → "Approved"`, "ghost  failed   not found", "2 members: 1 changed, 1 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(bob), bob); err != nil || bob.Spec.Approval != rosterv1.ApprovalApproved {
		t.Errorf("bob's approval is %q, %v", bob.Spec.Approval, err)
	}

	if _, errOut, err := run(c, "", "approve", "-l", "nobody=here"); err != nil || errOut != "no members matched\n" {
		t.Errorf("approve matching nothing: %v, %q", err, errOut)
	}
}

func TestExportToFile(t *testing.T) {
	c := newFakeClient(t, &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bob"},
		Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, DisplayName: "Bob",
			Email: "bob@acme.example", Role: rosterv1.RoleMember}})
	file := filepath.Join(t.TempDir(), "members.csv")

	_, errOut, err := run(c, "", "export", "--org", "acme", "-o", file)
	if err != nil || errOut != "exported 1 members to "+file+"\n" {
		t.Fatalf("export: %v, %q", err, errOut)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := "name,username,email,phone,department,position,workNumber,location,role,phase,joined\n" +
		"Bob,,bob@acme.example,,,,,,Member,,\n"
	if string(b) != want {
		t.Errorf("export wrote %q, want %q", b, want)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode %v, %v; want 0600, as it holds personal data", fi.Mode().Perm(), err)
	}
}
