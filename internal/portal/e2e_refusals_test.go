package portal

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// A test for every refusal: each ends on a page that says what happened and what to do.

// otherPortal starts a second replica of the portal, on the same cache and key, with a
// clock the test moves.
func otherPortal(t *testing.T) (url string, clk *clocktesting.FakeClock) {
	t.Helper()
	clk = clocktesting.NewFakeClock(time.Now())
	cfg := e2e.portalCfg
	cfg.Clock = clk
	srv, err := New(cfg)
	must(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return "http://" + ln.Addr().String(), clk
}

// wrongCode is a code that is not code.
func wrongCode(code string) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (n+1)%1_000_000)
}

// TestRefusedExpiredCodeAndLink: a code past its ten minutes, and a link past the
// organization's invitationTTL, on a replica whose clock has moved on.
func TestRefusedExpiredCodeAndLink(t *testing.T) {
	needE2E(t)
	org := newOrg(t)
	link := invite(t, org, "ed", "ed@example.org")
	url, clk := otherPortal(t)
	link = strings.Replace(link, e2e.url, url, 1)
	ctx := tab(t)
	open(t, ctx, link)
	fill(t, ctx, map[string]string{"username": "ed", "department": "Sales"})
	submit(t, ctx, "details")
	code := codeIn(t, nextMail(t, "ed@example.org"))
	clk.Step(codeTTL + time.Second)
	fill(t, ctx, map[string]string{"code": code})
	if status := submit(t, ctx, "verify"); status != http.StatusGone {
		t.Errorf("an expired code answers %d, want 410", status)
	}
	expectPage(t, ctx, "The code does not work any more", "Ask for a new code")
	shot(t, ctx, "refused-code")

	clk.Step(200 * time.Hour) // past the default invitationTTL of 168h
	other := tab(t)
	if status := open(t, other, link); status != http.StatusGone {
		t.Errorf("an expired link answers %d, want 410", status)
	}
	expectPage(t, other, "This link has expired", "Ask the person who invited you to send it again")
	shot(t, other, "refused-expired")
}

// TestRefusedWrongCodeFiveTimes: five wrong codes use the code up; the right one no longer
// works, and a new code does.
func TestRefusedWrongCodeFiveTimes(t *testing.T) {
	needE2E(t)
	org := newOrg(t)
	ctx := tab(t)
	open(t, ctx, invite(t, org, "gil", "gil@example.org"))
	fill(t, ctx, map[string]string{"username": "gil", "department": "Sales"})
	submit(t, ctx, "details")
	code := codeIn(t, nextMail(t, "gil@example.org"))
	for try := 1; try <= 4; try++ {
		fill(t, ctx, map[string]string{"code": wrongCode(code)})
		submit(t, ctx, "verify")
		expectPage(t, ctx, "Check your messages", fmt.Sprintf("You have %d more tries.", 5-try))
	}
	shot(t, ctx, "verify-wrong")
	fill(t, ctx, map[string]string{"code": wrongCode(code)})
	submit(t, ctx, "verify")
	expectPage(t, ctx, "The code does not work any more")
	open(t, ctx, e2e.url+"/verify")
	fill(t, ctx, map[string]string{"code": code})
	submit(t, ctx, "verify")
	expectPage(t, ctx, "The code does not work any more")

	// A new code, once 30 seconds have passed since the last one.
	must(t, e2e.k8s.DeleteAllOf(context.Background(), &corev1.Secret{}, client.InNamespace(portalNS), client.MatchingLabels{labelCode: "true"}))
	submit(t, ctx, "resend")
	expectPage(t, ctx, "Check your messages", "We sent a new code.")
	fill(t, ctx, map[string]string{"code": codeIn(t, nextMail(t, "gil@example.org"))})
	submit(t, ctx, "verify")
	expectPage(t, ctx, "Choose a password")
}

// seedAccount gives an external user a password, as a registration would, and makes them
// registered.
func seedAccount(t *testing.T, org *rosterv1.Organization, name string) {
	t.Helper()
	x := externalUser(t, org.Namespace, name)
	must(t, e2e.manager.Status().Patch(context.Background(), x, client.RawPatch("application/merge-patch+json", []byte(`{"status":{"emailVerified":true}}`))))
	hash, err := hashPassword(testPassword)
	must(t, err)
	c := credentials{client: e2e.portalCfg.Client, reader: e2e.portalCfg.APIReader, namespace: portalNS}
	must(t, c.store(context.Background(), accountOf(x), x.Spec.Email, "", hash))
}

// TestRefusedLockedAndNoSeat: a locked user, and one waiting for a seat, are told why.
func TestRefusedLockedAndNoSeat(t *testing.T) {
	needE2E(t)
	org := newOrg(t, func(o *rosterv1.Organization) {
		o.Spec.Applications = append(o.Spec.Applications, rosterv1.Application{Name: "tiny", DisplayName: "Tiny App",
			Portal: rosterv1.Portal{Enabled: true}, License: rosterv1.License{Seats: 1}})
	})
	addExternalUser(t, org, "lou", "support", "lou@partner.example", false)
	addExternalUser(t, org, "first", "tiny", "first@partner.example", false)
	waitXUPhase(t, org.Namespace, "first", rosterv1.ExternalUserInvited)
	seedAccount(t, org, "first")
	waitXUPhase(t, org.Namespace, "first", rosterv1.ExternalUserActive)
	addExternalUser(t, org, "second", "tiny", "second@partner.example", false)
	waitXUPhase(t, org.Namespace, "second", rosterv1.ExternalUserInvited)
	seedAccount(t, org, "second")
	waitXUPhase(t, org.Namespace, "second", rosterv1.ExternalUserWaitingForSeat)
	waitXUPhase(t, org.Namespace, "lou", rosterv1.ExternalUserInvited)
	seedAccount(t, org, "lou")
	lou := waitXUPhase(t, org.Namespace, "lou", rosterv1.ExternalUserActive)

	ctx := tab(t)
	if status := signIn(t, ctx, "second@partner.example"); status != http.StatusForbidden {
		t.Errorf("no seat: %d, want 403", status)
	}
	expectPage(t, ctx, "No seat is free", "All licensed seats of Tiny App are taken")
	shot(t, ctx, "refused-seat")

	signIn(t, ctx, "lou@partner.example")
	expectPage(t, ctx, "Your details")
	must(t, e2e.admin.Patch(context.Background(), lou, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"access":"Locked"}}`))))
	waitXUPhase(t, org.Namespace, "lou", rosterv1.ExternalUserLocked)
	open(t, ctx, e2e.url+"/profile")
	expectPage(t, ctx, "Your access is locked", "Support Portal")
	if status := signIn(t, ctx, "lou@partner.example"); status != http.StatusForbidden {
		t.Errorf("locked: %d, want 403", status)
	}
	expectPage(t, ctx, "Your access is locked")
	shot(t, ctx, "refused-locked")
}

// TestRefusedWithoutCSRFToken: a form without its token is refused, and nothing is sent.
func TestRefusedWithoutCSRFToken(t *testing.T) {
	needE2E(t)
	org := newOrg(t)
	ctx := tab(t)
	open(t, ctx, e2e.url+"/register/"+org.Namespace+"/acme/support")
	fill(t, ctx, map[string]string{"displayName": "Cy", "email": "cy@client.example"})
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#details input[name=csrf]').remove(), true`))
	must(t, err)
	if status := submit(t, ctx, "details"); status != http.StatusForbidden {
		t.Errorf("without the token: %d, want 403", status)
	}
	expectPage(t, ctx, "The form has expired", "reload the page")
	shot(t, ctx, "refused-csrf")
	if n := mailsTo("cy@client.example"); n != 0 {
		t.Fatalf("%d mails went out for a refused form", n)
	}
}

// TestParallelSignUpsOnOneLink: two people race through one link, each proving their own
// address (the link's address gets no account for them); exactly one wins.
func TestParallelSignUpsOnOneLink(t *testing.T) {
	needE2E(t)
	org := newOrg(t)
	link := invite(t, org, "twin", "twin@example.org")
	tabs := []context.Context{tab(t), tab(t)}
	for i, ctx := range tabs {
		email := fmt.Sprintf("%c@twins.example", 'a'+i)
		open(t, ctx, link)
		fill(t, ctx, map[string]string{"username": fmt.Sprintf("twin-%c", 'a'+i), "email": email, "department": "Sales"})
		submit(t, ctx, "details")
		expectPage(t, ctx, "Check your messages")
		fill(t, ctx, map[string]string{"code": codeIn(t, nextMail(t, email))})
		submit(t, ctx, "verify")
		expectPage(t, ctx, "Choose a password")
		fill(t, ctx, map[string]string{"password": testPassword, "password2": testPassword})
	}
	if n := mailsTo("twin@example.org"); n != 1 {
		t.Errorf("%d mails to the invited address, want only the invitation", n)
	}
	var wg sync.WaitGroup
	headings := make([]string, 2)
	errs := make([]error, 2)
	for i, ctx := range tabs {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if _, errs[i] = chromedp.RunResponse(cctx, chromedp.Click(chromedp.CSS("#setpassword-submit"))); errs[i] == nil {
				headings[i], errs[i] = chromedp.Run(cctx, chromedp.Text(chromedp.CSS("h1")))
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	won, lost := 0, 0
	for _, h := range headings {
		switch strings.TrimSpace(h) {
		case "Done":
			won++
		case "This link does not work":
			lost++
		}
	}
	if won != 1 || lost != 1 {
		t.Fatalf("pages %q: want one Done and one refusal", headings)
	}
	m := member(t, org.Namespace, "twin")
	if m.Spec.Username != "twin-a" && m.Spec.Username != "twin-b" {
		t.Fatalf("the member's username is %q", m.Spec.Username)
	}
	list := &rosterv1.MemberList{}
	must(t, e2e.k8s.List(context.Background(), list, client.InNamespace(org.Namespace)))
	if len(list.Items) != 1 {
		t.Fatalf("%d members, want 1", len(list.Items))
	}
}
