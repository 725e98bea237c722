package controllers_test

import (
	"context"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/notify/mailsink"
)

// Collaborations, created and changed by an admin through the API server. The person is told
// by email through a mail sink on loopback; the recording notifier shows what was sent.

func collaboration(ns, name, email string, mutate ...func(*rosterv1.Collaboration)) *rosterv1.Collaboration {
	c := &rosterv1.Collaboration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: rosterv1.CollaborationSpec{
			OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
			Collaborator:    rosterv1.Collaborator{DisplayName: name, Email: email},
		},
	}
	for _, m := range mutate {
		m(c)
	}
	return c
}

func inModules(ms ...rosterv1.Module) func(*rosterv1.Collaboration) {
	return func(c *rosterv1.Collaboration) { c.Spec.Modules = ms }
}

// waitCollaboration waits until the collaboration reached phase, its pass finished and
// nothing is under way.
func waitCollaboration(ctx context.Context, c *rosterv1.Collaboration, phase rosterv1.CollaborationPhase) *rosterv1.Collaboration {
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
		g.Expect(c.Status.Phase).To(Equal(phase), "collaboration %s: %v", describe(c), c.Status.Conditions)
		g.Expect(c.Status.ObservedGeneration).To(Equal(c.Generation))
		g.Expect(meta.FindStatusCondition(c.Status.Conditions, rosterv1.ConditionReconciling)).To(BeNil(), "%v", c.Status.Conditions)
	}, timeout, interval).Should(Succeed())
	return c
}

// templatesTo returns the template and key of every message sent to addr, oldest first.
func templatesTo(addr string) []string {
	var out []string
	for _, s := range notifier.to(addr) {
		out = append(out, string(s.Message.Template)+" "+s.Message.Key)
	}
	return out
}

var _ = Describe("Collaborations", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("F19 adding modules tells the person once per module, and they are Active once told", func(ctx context.Context) {
		withSMTP(ctx, ns, mailsink.Options{})
		const addr = "frank@f19.example"
		c := collaboration(ns, "frank", addr, inModules(
			rosterv1.Module{Kind: "Project", Name: "website", Role: "editor"},
			rosterv1.Module{Kind: "Task", Name: "copy"}))
		Expect(adminClient.Create(ctx, c)).To(Succeed())

		c = waitCollaboration(ctx, c, rosterv1.CollaborationActive)
		Expect(c.Status.ActiveModules).To(BeEquivalentTo(2))
		Expect(c.Status.NotifiedModules).To(ConsistOf("Project/website", "Task/copy"))
		Expect(readyCondition(c.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
		Expect(meta.IsStatusConditionTrue(c.Status.Conditions, rosterv1.ConditionNotified)).To(BeTrue())
		uid := string(c.UID)
		Eventually(func() []string { return templatesTo(addr) }, timeout, interval).Should(ConsistOf(
			"collaborator-added "+uid+"/collaborator-added/Project/website/1",
			"collaborator-added "+uid+"/collaborator-added/Task/copy/1"))
		sent := notifier.to(addr)
		Expect(sent[0].Message.Data).To(HaveKeyWithValue("ModuleName", "website"))
		Expect(sent[0].Message.Data).To(HaveKeyWithValue("ModuleKind", "Project"))

		By("adding a third module tells only about that one")
		Expect(setSpec(ctx, adminClient, c, `{"modules":[{"kind":"Project","name":"website","role":"editor"},{"kind":"Task","name":"copy"},{"kind":"Group","name":"authors"}]}`)).To(Succeed())
		Eventually(func() []string { return templatesTo(addr) }, timeout, interval).Should(ContainElement(
			"collaborator-added " + uid + "/collaborator-added/Group/authors/2"))
		c = waitCollaboration(ctx, c, rosterv1.CollaborationActive)
		Expect(c.Status.ActiveModules).To(BeEquivalentTo(3))

		By("a new manager tells nobody again")
		restartManager()
		poke(ctx, c)
		Consistently(func() []string { return templatesTo(addr) }, 2*time.Second, interval).Should(HaveLen(3))
		Eventually(func() []string { return eventReasons(ctx, c) }, timeout, interval).Should(ContainElements(rosterv1.EventModuleAdded, rosterv1.EventCollaborationInvited, rosterv1.EventCollaborationActivated))
	})

	It("F19 without a channel to reach them the person is told nothing, and the condition says so", func(ctx context.Context) {
		newOrganization(ctx, ns)
		c := collaboration(ns, "nina", "nina@f19.example", inModules(rosterv1.Module{Kind: "File", Name: "budget.xlsx"}))
		Expect(adminClient.Create(ctx, c)).To(Succeed())
		c = waitCollaboration(ctx, c, rosterv1.CollaborationActive)
		cond := meta.FindStatusCondition(c.Status.Conditions, rosterv1.ConditionNotified)
		Expect(cond).NotTo(BeNil())
		Expect(cond.Status).To(Equal(metav1.ConditionFalse))
		Expect(cond.Reason).To(Equal(rosterv1.ReasonNoNotificationChannel))
		Expect(cond.Message).To(ContainSubstring("kubectl edit org acme -n " + ns))
		Consistently(func() []string { return templatesTo("nina@f19.example") }, time.Second, interval).Should(BeEmpty())
	})

	It("F19 asking to join on a module's link: PendingApproval and told nothing; approved, told once; declined, gone", func(ctx context.Context) {
		withSMTP(ctx, ns, mailsink.Options{}, func(o *rosterv1.Organization) {
			o.Spec.ModuleLinks = []rosterv1.ModuleLink{{Kind: "Project", Name: "apollo", Role: "viewer"}, {Kind: "File", Name: "Plan für 2027.xlsx"}}
		})
		org := &rosterv1.Organization{}
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key(ns, "acme"), org)).To(Succeed())
			g.Expect(org.Status.ModuleLinks).To(HaveLen(2))
		}, timeout, interval).Should(Succeed())
		link := func(name string) (string, *corev1.Secret) {
			GinkgoHelper()
			for _, l := range org.Status.ModuleLinks {
				if l.Name == name {
					sec := &corev1.Secret{}
					Expect(k8sClient.Get(ctx, key(ns, l.SecretRef.Name), sec)).To(Succeed())
					return string(sec.Data["link"]), sec
				}
			}
			Fail("no module link for " + name)
			return "", nil
		}
		apolloLink, sec := link("apollo")
		Expect(apolloLink).To(HavePrefix("https://join.test/module/"))
		Expect(metav1.IsControlledBy(sec, org)).To(BeTrue())
		Expect(sec.Labels).To(HaveKeyWithValue(rosterv1.LabelModuleLink, "acme"))
		Expect(sec.Labels).To(HaveKeyWithValue(rosterv1.LabelModuleKind, "Project"))
		Expect(sec.Labels).NotTo(HaveKey(rosterv1.LabelOrganization), "a module link must not open the public join page")
		Expect(sec.Annotations).To(HaveKeyWithValue(rosterv1.AnnotationModuleName, "apollo"))
		Expect(sec.Data).NotTo(HaveKey("token"), "only the hash and the link are kept")
		_, fileSec := link("Plan für 2027.xlsx")
		Expect(fileSec.Annotations).To(HaveKeyWithValue(rosterv1.AnnotationModuleName, "Plan für 2027.xlsx"))
		Expect(fileSec.Labels).NotTo(HaveKey(rosterv1.LabelModuleName), "a name that is no label value is only in the annotation")
		token := apolloLink[strings.LastIndex(apolloLink, "/")+1:]
		var in *membership.ModuleInvite
		Eventually(func() error { var err error; in, err = acceptor().ModuleForLink(ctx, token); return err }, timeout, interval).Should(Succeed())
		Expect(in.Link).To(Equal(rosterv1.ModuleLink{Kind: "Project", Name: "apollo", Role: "viewer"}))
		_, err := acceptor().OrganizationForPublicLink(ctx, token)
		Expect(err).To(MatchError(membership.ErrInvalidLink), "a module link opens no public join page")

		By("the person asks: PendingApproval, in no module, and told nothing")
		const addr = "paula@f19.example"
		c, err := acceptor().AskToJoin(ctx, in.Organization, in.Link, rosterv1.Collaborator{DisplayName: "Paula", Email: addr})
		Expect(err).NotTo(HaveOccurred())
		c = waitCollaboration(ctx, c, rosterv1.CollaborationPendingApproval)
		Expect(c.Spec.Modules).To(Equal([]rosterv1.Module{{Kind: "Project", Name: "apollo", Role: "viewer", Approval: rosterv1.ModulePending}}))
		Expect(c.Status.ActiveModules).To(BeZero())
		Expect(c.Status.PendingModules).To(BeEquivalentTo(1))
		ready := readyCondition(c.Status.Conditions)
		Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		Expect(ready.Reason).To(Equal(rosterv1.ReasonModulesAwaitingApproval))
		Expect(ready.Message).To(ContainSubstring("Paula asked to join Project apollo and is in no module until an admin approves"))
		approve := "kubectl patch collab " + c.Name + " -n " + ns + " --type=json -p '"
		Expect(ready.Message).To(ContainSubstring("To approve: " + approve))
		Eventually(func() []string { return eventReasons(ctx, c) }, timeout, interval).Should(ContainElement(rosterv1.EventCollaborationPendingApproval))
		Consistently(func() []string { return templatesTo(addr) }, time.Second, interval).Should(BeEmpty())
		Expect(k8sClient.Get(ctx, key(ns, "acme"), org)).To(Succeed())
		Expect(org.Status.Collaborators).To(BeZero(), "nobody is a collaborator before an admin lets them in")

		By("asking again changes nothing")
		again, err := acceptor().AskToJoin(ctx, in.Organization, in.Link, rosterv1.Collaborator{DisplayName: "Paula P.", Email: addr})
		Expect(err).NotTo(HaveOccurred())
		Expect(again.Name).To(Equal(c.Name))
		Expect(again.Generation).To(Equal(c.Generation))

		By("an admin approves with the command the condition gives: Active, and told exactly once")
		Expect(adminClient.Patch(ctx, c, client.RawPatch(types.JSONPatchType, []byte(patchIn(ready.Message, "To approve: "))))).To(Succeed())
		c = waitCollaboration(ctx, c, rosterv1.CollaborationActive)
		Expect(c.Status.ActiveModules).To(BeEquivalentTo(1))
		Expect(c.Status.PendingModules).To(BeZero())
		added := "collaborator-added " + string(c.UID) + "/collaborator-added/Project/apollo/2"
		Eventually(func() []string { return templatesTo(addr) }, timeout, interval).Should(Equal([]string{added}))
		Eventually(func() int32 {
			Expect(k8sClient.Get(ctx, key(ns, "acme"), org)).To(Succeed())
			return org.Status.Collaborators
		}, timeout, interval).Should(BeEquivalentTo(1))
		_, err = acceptor().AskToJoin(ctx, in.Organization, in.Link, rosterv1.Collaborator{DisplayName: "Paula", Email: addr})
		Expect(err).NotTo(HaveOccurred())
		poke(ctx, c)
		Consistently(func() []string { return templatesTo(addr) }, 2*time.Second, interval).Should(Equal([]string{added}))

		By("someone else asks and an admin declines by removing the entry: gone, and told nothing")
		const quinn = "quinn@f19.example"
		q, err := acceptor().AskToJoin(ctx, in.Organization, in.Link, rosterv1.Collaborator{DisplayName: "Quinn", Email: quinn})
		Expect(err).NotTo(HaveOccurred())
		q = waitCollaboration(ctx, q, rosterv1.CollaborationPendingApproval)
		Expect(adminClient.Patch(ctx, q, client.RawPatch(types.JSONPatchType,
			[]byte(patchIn(readyCondition(q.Status.Conditions).Message, "to decline, remove the entry: "))))).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(q), &rosterv1.Collaboration{}))
		}, timeout, interval).Should(BeTrue())
		Expect(templatesTo(quinn)).To(BeEmpty())

		By("rotating the link: the old one stops at once, the new one works")
		Expect(setSpec(ctx, adminClient, org, `{"moduleLinks":[{"kind":"Project","name":"apollo","role":"viewer","linkGeneration":1},{"kind":"File","name":"Plan für 2027.xlsx"}]}`)).To(Succeed())
		Eventually(func() error { _, err := acceptor().ModuleForLink(ctx, token); return err }, timeout, interval).Should(MatchError(membership.ErrInvalidLink))
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key(ns, "acme"), org)).To(Succeed())
			g.Expect(org.Status.ModuleLinks[0].LinkGeneration).To(BeEquivalentTo(1))
		}, timeout, interval).Should(Succeed())
		newLink, _ := link("apollo")
		Expect(newLink).NotTo(Equal(apolloLink))
		Eventually(func() error {
			_, err := acceptor().ModuleForLink(ctx, newLink[strings.LastIndex(newLink, "/")+1:])
			return err
		}, timeout, interval).Should(Succeed())

		By("removing the entry deletes its link")
		Expect(setSpec(ctx, adminClient, org, `{"moduleLinks":[{"kind":"Project","name":"apollo","role":"viewer","linkGeneration":1}]}`)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(fileSec), &corev1.Secret{}))
		}, timeout, interval).Should(BeTrue())
	})

	It("F20 removing a module and its expiry tell the person, and with no module left the Collaboration goes", func(ctx context.Context) {
		withSMTP(ctx, ns, mailsink.Options{})
		const addr = "gina@f20.example"
		expires := metav1.NewTime(fakeClock.Now().Add(time.Hour))
		c := collaboration(ns, "gina", addr, inModules(
			rosterv1.Module{Kind: "Project", Name: "website"},
			rosterv1.Module{Kind: "Task", Name: "review", ExpiresAt: &expires}))
		Expect(adminClient.Create(ctx, c)).To(Succeed())
		c = waitCollaboration(ctx, c, rosterv1.CollaborationActive)
		Expect(c.Status.ActiveModules).To(BeEquivalentTo(2))
		uid := string(c.UID)

		By("removing a module")
		Expect(setSpec(ctx, adminClient, c, `{"modules":[{"kind":"Task","name":"review","expiresAt":"`+expires.UTC().Format(time.RFC3339)+`"}]}`)).To(Succeed())
		Eventually(func() []string { return templatesTo(addr) }, timeout, interval).Should(ContainElement(
			"collaborator-removed " + uid + "/collaborator-removed/Project/website/2"))
		c = waitCollaboration(ctx, c, rosterv1.CollaborationActive)
		Expect(c.Status.ActiveModules).To(BeEquivalentTo(1))
		Expect(c.Status.NotifiedModules).To(ConsistOf("Task/review"))

		By("the last module expiring: the person is told, then the Collaboration is deleted")
		fakeClock.Step(time.Hour)
		poke(ctx, c)
		Eventually(func() []string { return templatesTo(addr) }, timeout, interval).Should(ContainElement(
			"collaborator-removed " + uid + "/collaborator-removed/Task/review/2"))
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), &rosterv1.Collaboration{}))
		}, timeout, interval).Should(BeTrue())
		Expect(templatesTo(addr)).To(HaveLen(4))
		Eventually(func() []string { return eventReasons(ctx, c) }, timeout, interval).Should(ContainElements(rosterv1.EventModuleRemoved, rosterv1.EventModuleExpired,
			rosterv1.EventCollaborationRemoved, rosterv1.EventCollaborationDeleted))
	})

	It("F20 with cleanupPolicy Retain a collaboration in no module is kept as Removed", func(ctx context.Context) {
		withSMTP(ctx, ns, mailsink.Options{})
		const addr = "hugo@f20.example"
		c := collaboration(ns, "hugo", addr, inModules(rosterv1.Module{Kind: "Group", Name: "authors"}),
			func(c *rosterv1.Collaboration) { c.Spec.CleanupPolicy = rosterv1.CleanupRetain })
		Expect(adminClient.Create(ctx, c)).To(Succeed())
		waitCollaboration(ctx, c, rosterv1.CollaborationActive)

		Expect(setSpec(ctx, adminClient, c, `{"modules":null}`)).To(Succeed())
		c = waitCollaboration(ctx, c, rosterv1.CollaborationRemoved)
		Expect(c.Status.ActiveModules).To(BeZero())
		Expect(c.Status.NotifiedModules).To(BeEmpty())
		Expect(readyCondition(c.Status.Conditions).Reason).To(Equal(rosterv1.ReasonCollaborationRemoved))
		Expect(readyCondition(c.Status.Conditions).Message).To(ContainSubstring("kubectl delete collab hugo -n " + ns))
		Expect(templatesTo(addr)).To(ConsistOf(
			"collaborator-added "+string(c.UID)+"/collaborator-added/Group/authors/1",
			"collaborator-removed "+string(c.UID)+"/collaborator-removed/Group/authors/2"))
		Consistently(func() error { return k8sClient.Get(ctx, client.ObjectKeyFromObject(c), c) }, time.Second, interval).Should(Succeed())
	})

	It("F21 an application's external user is not counted among the organization's collaborators", func(ctx context.Context) {
		org := newOrganization(ctx, ns, func(o *rosterv1.Organization) {
			o.Spec.Applications = []rosterv1.Application{{Name: "support-portal", License: rosterv1.License{Seats: 5}}}
		})
		Expect(adminClient.Create(ctx, &rosterv1.ExternalUser{
			ObjectMeta: metav1.ObjectMeta{Name: "erin-support", Namespace: ns},
			Spec: rosterv1.ExternalUserSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
				Application: "support-portal", DisplayName: "Erin", Email: "Erin@Partner.example"},
		})).To(Succeed())
		module := inModules(rosterv1.Module{Kind: "Project", Name: "onboarding"})
		erin := collaboration(ns, "erin", "erin@partner.example", module)
		frank := collaboration(ns, "frank", "frank@freelance.example", module)
		Expect(adminClient.Create(ctx, erin)).To(Succeed())
		Expect(adminClient.Create(ctx, frank)).To(Succeed())
		waitCollaboration(ctx, erin, rosterv1.CollaborationActive)
		waitCollaboration(ctx, frank, rosterv1.CollaborationActive)

		collaborators := func() int32 {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
			return org.Status.Collaborators
		}
		Eventually(collaborators, timeout, interval).Should(BeEquivalentTo(1))
		Consistently(collaborators, time.Second, interval).Should(BeEquivalentTo(1))

		By("once she is no external user any more, she counts")
		Expect(adminClient.Delete(ctx, &rosterv1.ExternalUser{ObjectMeta: metav1.ObjectMeta{Name: "erin-support", Namespace: ns}})).To(Succeed())
		Eventually(collaborators, timeout, interval).Should(BeEquivalentTo(2))
	})
})

// patchIn is the JSON patch of the kubectl command that follows after in a condition
// message: what an admin pastes.
func patchIn(message, after string) string {
	GinkgoHelper()
	_, rest, ok := strings.Cut(message, after)
	Expect(ok).To(BeTrue(), "no %q in %q", after, message)
	_, rest, ok = strings.Cut(rest, " -p '")
	Expect(ok).To(BeTrue(), "no patch in %q", message)
	patch, _, ok := strings.Cut(rest, "'")
	Expect(ok).To(BeTrue(), "no end of the patch in %q", message)
	return patch
}
