package controllers_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

var _ = Describe("Metrics", func() {
	It("an authorized scraper sees every Roster metric over HTTPS; anyone else is refused", func(ctx context.Context) {
		ns := newNamespace(ctx)
		app := licensed("support", 3)
		ends := metav1.NewTime(time.Now().Add(30 * 24 * time.Hour))
		app.License.ExpiresAt = &ends
		newOrganization(ctx, ns, withApps(app))
		invite(ctx, adminClient, invitation(ns, "mia", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "mia@metrics.example"}), rosterv1.InvitationSent)

		By("a ServiceAccount bound to the shipped roster-metrics-reader role, and one without it")
		raw, err := os.ReadFile("../config/rbac/metrics_reader_role.yaml")
		Expect(err).NotTo(HaveOccurred())
		role := &rbacv1.ClusterRole{}
		Expect(yaml.Unmarshal(raw, role)).To(Succeed())
		role.Name = "roster-metrics-reader-" + ns
		Expect(k8sClient.Create(ctx, role)).To(Succeed())
		DeferCleanup(func(ctx context.Context) { _ = k8sClient.Delete(ctx, role) })
		token := func(name string) string {
			GinkgoHelper()
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
			Expect(k8sClient.Create(ctx, sa)).To(Succeed())
			tr := &authenticationv1.TokenRequest{}
			Expect(k8sClient.SubResource("token").Create(ctx, sa, tr)).To(Succeed())
			return tr.Status.Token
		}
		binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus", Namespace: ns}}}
		Expect(k8sClient.Create(ctx, binding)).To(Succeed())
		DeferCleanup(func(ctx context.Context) { _ = k8sClient.Delete(ctx, binding) })
		prometheus, stranger := token("prometheus"), token("stranger")

		scrape := func(bearer string) (int, string) {
			GinkgoHelper()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+metricsAddr+"/metrics", nil)
			Expect(err).NotTo(HaveOccurred())
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			// The manager's certificate is self-signed here; in a cluster cert-manager's is used.
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test
			resp, err := c.Do(req)
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		code, _ := scrape("")
		Expect(code).To(Equal(http.StatusUnauthorized))
		code, _ = scrape(stranger)
		Expect(code).To(Equal(http.StatusForbidden))
		Eventually(func(g Gomega) {
			code, body := scrape(prometheus)
			g.Expect(code).To(Equal(http.StatusOK))
			for _, m := range []string{
				`roster_invitations{namespace="` + ns + `",organization="acme",phase="Sent"} 1`,
				`roster_deliveries_total{channel="email",result="sent"}`,
				`roster_delivery_seconds_bucket{channel="email"`,
				`roster_members_awaiting_approval{namespace="` + ns + `",organization="acme"} 0`,
				`roster_seats_used{application="support",namespace="` + ns + `",organization="acme"} 0`,
				`roster_seats_licensed{application="support",namespace="` + ns + `",organization="acme"} 3`,
				`roster_license_expiry_timestamp_seconds{application="support",namespace="` + ns + `",organization="acme"}`,
				`controller_runtime_reconcile_errors_total{controller="invitation"}`,
			} {
				g.Expect(body).To(ContainSubstring(m))
			}
		}, timeout, interval).Should(Succeed())
	})
})
