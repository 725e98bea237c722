package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/notify"
	"github.com/roster-dev/roster/internal/notify/mailsink"
)

// Notifications through a real SMTP server on loopback, started inside the test process.

// withSMTP starts a mail sink and an Organization whose email goes there over STARTTLS
// with authentication.
func withSMTP(ctx context.Context, ns string, opts mailsink.Options, mutate ...func(*rosterv1.Organization)) *mailsink.Server {
	opts.TLS, opts.Username, opts.Password = mailsink.TLSStartTLS, "roster", "s3cret-pass"
	sink, err := mailsink.Start(opts)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(sink.Close)
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "smtp", Namespace: ns, Labels: map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster}},
		StringData: map[string]string{
			"host": sink.Host(), "port": strconv.Itoa(sink.Port()), "tls": "starttls",
			"username": "roster", "password": "s3cret-pass", "caBundle": string(sink.CertificatePEM()),
		},
	})).To(Succeed())
	newOrganization(ctx, ns, append(mutate, func(o *rosterv1.Organization) {
		o.Spec.Notifications.Email = &rosterv1.EmailNotifications{SMTPSecretRef: rosterv1.LocalObjectReference{Name: "smtp"}, From: "Acme <people@acme.example>"}
	})...)
	return sink
}

func mailsTo(sink *mailsink.Server, addr string) []mailsink.Mail {
	var out []mailsink.Mail
	for _, m := range sink.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, addr) {
				out = append(out, m)
			}
		}
	}
	return out
}

var _ = Describe("Notifications", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("mail an invitation with a working link in both parts", func(ctx context.Context) {
		sink := withSMTP(ctx, ns, mailsink.Options{})
		inv := invite(ctx, adminClient, invitation(ns, "mia", rosterv1.InvitationMethodEmail,
			rosterv1.Invitee{Name: "Mia <Admin>", Email: "mia@mail.example"}), rosterv1.InvitationSent)

		Eventually(func() []mailsink.Mail { return mailsTo(sink, "mia@mail.example") }, timeout, interval).Should(HaveLen(1))
		mail := mailsTo(sink, "mia@mail.example")[0]
		Expect(mail.TLS).To(BeTrue())
		Expect(mail.AuthUser).To(Equal("roster"))
		Expect(mail.From).To(Equal("people@acme.example"))
		Expect(mail.Subject).To(ContainSubstring("Acme"))
		Expect(mail.ContentType).To(Equal("multipart/alternative"))
		Expect(mail.Text).NotTo(BeEmpty())
		Expect(mail.HTML).To(ContainSubstring("Mia &lt;Admin&gt;"))
		Expect(mail.HTML).NotTo(ContainSubstring("Mia <Admin>"))
		Expect(mail.MessageID).To(Equal(notify.MessageID(string(inv.UID)+"/invitation/0", "Acme <people@acme.example>")))

		links := mail.Links()
		Expect(links).NotTo(BeEmpty())
		link := links[0]
		Expect(link).To(HavePrefix("https://join.test/invite/"))
		Expect(mail.HTML).To(ContainSubstring(link))
		m, err := acceptToken(ctx, strings.TrimPrefix(link, "https://join.test/invite/"), membership.SignUp{Username: "mia"})
		Expect(err).NotTo(HaveOccurred())
		Expect(m.Spec.Username).To(Equal("mia"))

		By("no secret in status or events")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(inv), inv)).To(Succeed())
		status, err := json.Marshal(inv.Status)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(status)).NotTo(ContainSubstring(strings.TrimPrefix(link, "https://join.test/invite/")))
		Expect(string(status)).NotTo(ContainSubstring("s3cret-pass"))
		for _, r := range eventNotes(ctx, ns) {
			Expect(r).NotTo(ContainSubstring("s3cret-pass"))
			Expect(r).NotTo(ContainSubstring(strings.TrimPrefix(link, "https://join.test/invite/")))
		}
	})

	It("a manager killed between sending and recording sends at most one duplicate, with the same Message-ID", func(ctx context.Context) {
		var killed atomic.Bool
		sink := withSMTP(ctx, ns, mailsink.Options{OnMail: func(m mailsink.Mail) {
			if strings.Contains(strings.Join(m.To, ","), "kill@mail.example") && killed.CompareAndSwap(false, true) {
				stopManager() // the reconcile that sent this has not recorded it yet
			}
		}})
		inv := invitation(ns, "kill", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "kill@mail.example"})
		Expect(adminClient.Create(ctx, inv)).To(Succeed())
		Eventually(killed.Load, timeout, interval).Should(BeTrue())
		<-managerDone
		startManager()

		waitInvitation(ctx, inv, rosterv1.InvitationSent)
		Consistently(func() int { return len(mailsTo(sink, "kill@mail.example")) }, time.Second, interval).Should(BeNumerically("<=", 2))
		mails := mailsTo(sink, "kill@mail.example")
		Expect(mails).NotTo(BeEmpty())
		for _, m := range mails {
			Expect(m.MessageID).To(Equal(notify.MessageID(string(inv.UID)+"/invitation/0", "Acme <people@acme.example>")))
		}
		Expect(inv.Status.Deliveries).To(HaveLen(1))
		Expect(inv.Status.Deliveries[0].State).To(Equal("Sent"))
		By("the newest mail's link works")
		links := mails[len(mails)-1].Links()
		Eventually(func() error {
			_, err := acceptor().Lookup(ctx, strings.TrimPrefix(links[0], "https://join.test/invite/"))
			return err
		}, timeout, interval).Should(Succeed())
	})

	It("a channel that is down and comes back delivers everything, in order per recipient", func(ctx context.Context) {
		sink := withSMTP(ctx, ns, mailsink.Options{})
		m := member(ctx, ns, "ned", "ned@mail.example", rosterv1.RoleMember, func(m *rosterv1.Member) {
			m.Spec.Provenance.JoinMethod = rosterv1.JoinMethodPublicLink
		})
		waitMember(ctx, ns, "ned", rosterv1.MemberPending)
		Expect(sink.Down()).To(Succeed())

		for _, n := range []string{"one", "two", "three"} {
			Expect(adminClient.Create(ctx, invitation(ns, n, rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: n + "@mail.example"}))).To(Succeed())
		}
		Expect(setSpec(ctx, adminClient, m, `{"approval":"Approved"}`)).To(Succeed())
		waitMember(ctx, ns, "ned", rosterv1.MemberActive)
		Expect(setSpec(ctx, adminClient, m, `{"access":"Terminated"}`)).To(Succeed())
		waitMember(ctx, ns, "ned", rosterv1.MemberTerminated)
		Expect(setSpec(ctx, adminClient, m, `{"access":"Active"}`)).To(Succeed())
		waitMember(ctx, ns, "ned", rosterv1.MemberActive)

		Eventually(func(g Gomega) {
			inv := &rosterv1.Invitation{}
			g.Expect(k8sClient.Get(ctx, key(ns, "one"), inv)).To(Succeed())
			g.Expect(readyCondition(inv.Status.Conditions).Reason).To(Equal("DeliveryRetrying"))
			g.Expect(readyCondition(inv.Status.Conditions).Message).To(ContainSubstring("connection refused"))
		}, timeout, interval).Should(Succeed())
		Expect(sink.Messages()).To(BeEmpty())

		Expect(sink.Up()).To(Succeed())
		for _, n := range []string{"one", "two", "three"} {
			Eventually(func() []mailsink.Mail { return mailsTo(sink, n+"@mail.example") }, timeout, interval).Should(HaveLen(1))
		}
		Eventually(func() []mailsink.Mail { return mailsTo(sink, "ned@mail.example") }, timeout, interval).Should(HaveLen(3))
		var order []string
		for _, mail := range mailsTo(sink, "ned@mail.example") {
			order = append(order, mail.Header.Get("X-Roster-Idempotency-Key"))
		}
		Expect(order).To(HaveExactElements(ContainSubstring("/member-approved/"), ContainSubstring("/member-removed/"), ContainSubstring("/member-restored/")))
	})
})

var _ = Describe("Notifications to admins and overrides", func() {
	It("post approval-needed to the organization's signed webhook, and use its template overrides", func(ctx context.Context) {
		ns := newNamespace(ctx)
		type post struct {
			header http.Header
			body   []byte
		}
		posts := make(chan post, 10)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			posts <- post{r.Header.Clone(), body}
		}))
		DeferCleanup(srv.Close)
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: ns, Labels: map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster}},
			StringData: map[string]string{"url": srv.URL, "signingKey": "hook-key"},
		})).To(Succeed())
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "templates", Namespace: ns},
			Data:       map[string]string{"approval-needed.webhook.tmpl": "Review {{.InviteeName}} for {{.OrganizationName}}, please."},
		})).To(Succeed())
		newOrganization(ctx, ns, func(o *rosterv1.Organization) {
			o.Spec.Notifications.Webhook = &rosterv1.SecretNotifications{SecretRef: rosterv1.LocalObjectReference{Name: "hook"}}
			o.Spec.Notifications.TemplatesRef = &rosterv1.LocalObjectReference{Name: "templates"}
		})
		m := member(ctx, ns, "oz", "oz@hook.example", rosterv1.RoleMember, func(m *rosterv1.Member) {
			m.Spec.Provenance.JoinMethod = rosterv1.JoinMethodDoorNumber
		})
		waitMember(ctx, ns, "oz", rosterv1.MemberPending)

		var p post
		Eventually(posts, timeout).Should(Receive(&p))
		Expect(notify.VerifySignature([]byte("hook-key"), p.header.Get(notify.HeaderTimestamp), p.body, p.header.Get(notify.HeaderSignature))).To(BeTrue())
		Expect(notify.VerifySignature([]byte("wrong-key"), p.header.Get(notify.HeaderTimestamp), p.body, p.header.Get(notify.HeaderSignature))).To(BeFalse())
		Expect(p.header.Get(notify.HeaderIdempotencyKey)).To(Equal(fmt.Sprintf("%s/approval-needed/%d", m.UID, 1)))
		var event map[string]any
		Expect(json.Unmarshal(p.body, &event)).To(Succeed())
		Expect(event["text"]).To(Equal("Review oz for Acme, please."))
		Consistently(posts, time.Second).ShouldNot(Receive(), "one post, not repeated")
	})
})

func eventNotes(ctx context.Context, ns string) []string {
	list := &eventsv1List{}
	Expect(k8sClient.List(ctx, &list.EventList, client.InNamespace(ns))).To(Succeed())
	var notes []string
	for _, e := range list.Items {
		notes = append(notes, e.Note)
	}
	return notes
}
