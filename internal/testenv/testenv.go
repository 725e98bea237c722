// Package testenv is the local control plane Roster's tests and `make demo` run on: a real
// kube-apiserver and etcd (from hack/setup-envtest.sh, named by KUBEBUILDER_ASSETS) with
// Roster's CRDs and, where asked, its admission webhooks served from this process.
package testenv

import (
	"context"
	"strings"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // the helpers below are for ginkgo suites
	. "github.com/onsi/gomega"    //nolint:revive
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/roster-dev/roster/internal/testenv/rig"
)

// Root is the repository's root directory, wherever the caller runs from.
func Root() string { return rig.Root() }

// New describes a control plane with Roster's CRDs installed, and with its webhook
// configurations installed and pointed at this process when webhooks is true.
func New(webhooks bool) *envtest.Environment { return rig.Environment(webhooks) }

// OwnerReferencesPermissionEnforcement is the admission plugin that lets only those who may
// delete an object change its ownerReferences, and only those who may update an owner's
// finalizers subresource set blockOwnerDeletion on a reference to it. kube-apiserver does not
// enable it by default and envtest does not either, but many clusters (OpenShift's among them)
// do, and the */finalizers rules of Roster's ClusterRoles exist for it.
const OwnerReferencesPermissionEnforcement = "OwnerReferencesPermissionEnforcement"

// Bare describes a control plane with nothing of Roster's installed, for a test that installs
// Roster itself, with admission plugins enabled beyond kube-apiserver's defaults. Its
// WebhookInstallOptions still get a serving certificate, CA and loopback port when it starts
// (LocalServingCertDir, LocalServingCAData, LocalServingHost and LocalServingPort), for
// webhooks the test installs and serves.
func Bare(admissionPlugins ...string) *envtest.Environment {
	env := &envtest.Environment{}
	if len(admissionPlugins) > 0 {
		env.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", strings.Join(admissionPlugins, ","))
	}
	return env
}

// Start starts a control plane for a ginkgo suite (without webhooks) and returns it with a
// cluster-admin client that knows Roster's kinds. Stop it in AfterSuite.
func Start() (*envtest.Environment, client.WithWatch) {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	env := New(false)
	cfg, err := env.Start()
	Expect(err).NotTo(HaveOccurred())
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: Scheme()})
	Expect(err).NotTo(HaveOccurred())
	return env, c
}

// Scheme knows the Kubernetes kinds and Roster's.
func Scheme() *k8sruntime.Scheme { return rig.Scheme() }

// Namespace creates a namespace for one ginkgo spec and deletes it when the spec ends, so
// specs never see each other's objects.
func Namespace(ctx context.Context, c client.Client, prefix string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	Expect(c.Create(ctx, ns)).To(Succeed())
	DeferCleanup(func(ctx context.Context) {
		Expect(client.IgnoreNotFound(c.Delete(ctx, ns))).To(Succeed())
	})
	return ns.Name
}
