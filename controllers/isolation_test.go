package controllers_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/notify/mailsink"
)

// Sending stays off the workers' critical path: one organization's mail server cannot hold
// up another's invitations.
var _ = Describe("Sending", func() {
	It("an organization whose mail server accepts and never answers does not delay another's invitations", func(ctx context.Context) {
		By("organization A points at a server that takes connections and says nothing")
		silent, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(silent.Close)
		var held []net.Conn
		go func() {
			for {
				c, err := silent.Accept()
				if err != nil {
					return
				}
				held = append(held, c) // never read, never answered, closed with the listener's test
			}
		}()
		DeferCleanup(func() {
			for _, c := range held {
				_ = c.Close()
			}
		})
		a := newNamespace(ctx)
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "smtp", Namespace: a, Labels: map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster}},
			StringData: map[string]string{"host": "127.0.0.1", "port": strconv.Itoa(silent.Addr().(*net.TCPAddr).Port), "tls": "none"},
		})).To(Succeed())
		newOrganization(ctx, a, func(o *rosterv1.Organization) {
			o.Spec.Notifications.Email = &rosterv1.EmailNotifications{SMTPSecretRef: rosterv1.LocalObjectReference{Name: "smtp"}, From: "A <a@a.example>"}
		})
		// Organization A goes with its invitations afterwards, so they do not retry for the
		// rest of the suite.
		DeferCleanup(func(ctx context.Context) {
			Expect(adminClient.Delete(ctx, &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: a}})).To(Succeed())
		})
		for i := range 8 {
			Expect(adminClient.Create(ctx, invitation(a, fmt.Sprintf("stuck-%d", i), rosterv1.InvitationMethodEmail,
				rosterv1.Invitee{Email: fmt.Sprintf("stuck-%d@a.example", i)}))).To(Succeed())
		}

		By("organization B's invitations are delivered within a few seconds")
		b := newNamespace(ctx)
		sink := withSMTP(ctx, b, mailsink.Options{})
		start := time.Now()
		for i := range 5 {
			Expect(adminClient.Create(ctx, invitation(b, fmt.Sprintf("fine-%d", i), rosterv1.InvitationMethodEmail,
				rosterv1.Invitee{Email: fmt.Sprintf("fine-%d@b.example", i)}))).To(Succeed())
		}
		Eventually(func() int { return len(sink.Messages()) }, 5*time.Second, interval).Should(Equal(5))
		GinkgoWriter.Printf("organization B's 5 invitations were delivered in %s\n", time.Since(start).Round(time.Millisecond))
	})

	It("a retried delivery carries the same link, which works", func(ctx context.Context) {
		ns := newNamespace(ctx)
		newOrganization(ctx, ns)
		notifier.fail("retry@links.example", fmt.Errorf("connection reset by peer"))
		inv := invitation(ns, "retry", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "retry@links.example"})
		Expect(adminClient.Create(ctx, inv)).To(Succeed())
		Eventually(func() int { return len(notifier.attemptedLinks("retry@links.example")) }, timeout, interval).Should(BeNumerically(">=", 2))
		notifier.fail("retry@links.example", nil)
		waitInvitation(ctx, inv, rosterv1.InvitationSent)
		links := notifier.attemptedLinks("retry@links.example")
		for _, l := range links[1:] {
			Expect(l).To(Equal(links[0]), "every attempt under one key carries one link")
		}
		token := links[0][strings.LastIndex(links[0], "/")+1:]
		_, err := acceptToken(ctx, token, membership.SignUp{Username: "retry"})
		Expect(err).NotTo(HaveOccurred())
	})
})
