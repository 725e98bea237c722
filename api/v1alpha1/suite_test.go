package v1alpha1_test

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/roster-dev/roster/internal/testenv"
)

// These tests prove the CRD schemas against a real kube-apiserver: what the schema accepts,
// defaults and refuses is what users get from kubectl apply.

var (
	testEnv   *envtest.Environment
	k8sClient client.Client
)

func TestSchema(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "API schema suite")
}

var _ = BeforeSuite(func() { testEnv, k8sClient = testenv.Start() })

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

func newNamespace(ctx context.Context) string { return testenv.Namespace(ctx, k8sClient, "schema") }
