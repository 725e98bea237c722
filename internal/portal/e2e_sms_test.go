package portal

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/notify"
)

// smsGateway is an SMS provider on loopback: it takes the JSON Roster posts, as a real
// provider's HTTP API would, and keeps the texts by number.
type smsGateway struct {
	*httptest.Server
	mu    sync.Mutex
	texts map[string][]string
	auth  []string
}

func startSMSGateway(t *testing.T) *smsGateway {
	t.Helper()
	g := &smsGateway{texts: map[string][]string{}}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p notify.SMSPayload
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.texts[p.To] = append(g.texts[p.To], p.Text)
		g.auth = append(g.auth, r.Header.Get("Authorization"))
		g.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(g.Close)
	return g
}

// next waits for the next text to phone after the n already read.
func (g *smsGateway) next(t *testing.T, phone string, n int) string {
	t.Helper()
	var text string
	eventually(t, "a text message to "+phone, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(g.texts[phone]) > n {
			text = g.texts[phone][n]
			return true
		}
		return false
	})
	return text
}

// withSMS sends the organization's texts to gateway.
func withSMS(secret string) orgOption {
	return func(o *rosterv1.Organization) {
		o.Spec.Notifications.SMS = &rosterv1.SecretNotifications{SecretRef: rosterv1.LocalObjectReference{Name: secret}}
	}
}

// TestJoinByPhoneWithTextedCode: someone with no email joins by door number with their phone;
// the code goes by SMS through the organization's provider, a wrong code is refused, the
// texted one works, and the Member waits for approval with the phone they proved. Once
// approved, they change their phone on the profile page, proved by a code texted there.
func TestJoinByPhoneWithTextedCode(t *testing.T) {
	needE2E(t)
	gw := startSMSGateway(t)
	const secret = "sms-provider"
	org := newOrg(t, withSMS(secret))
	// The Secret goes in the namespace newOrg makes; nothing reads it before the first code.
	must(t, e2e.k8s.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: org.Namespace,
		Labels: map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster}},
		StringData: map[string]string{notify.SecretKeyURL: gw.URL + "/send", notify.SecretKeyToken: "gateway-token"}}))

	const phone = "+4915100000077"
	ctx := tab(t)
	open(t, ctx, e2e.url+"/")
	fill(t, ctx, map[string]string{"door": org.Status.DoorNumber})
	submit(t, ctx, "join")
	expectPage(t, ctx, "Ask to join Acme Corporation")
	fill(t, ctx, map[string]string{"username": "phil", "displayName": "Phil", "phone": "+49 151 00000077", "department": "Field"})
	submit(t, ctx, "details")
	expectPage(t, ctx, "Check your messages")
	shot(t, ctx, "verify-sms")
	text := gw.next(t, phone, 0)
	c := codePattern.FindStringSubmatch(text)
	if c == nil {
		t.Fatalf("no code in the text %q", text)
	}
	if gw.auth[0] != "Bearer gateway-token" {
		t.Errorf("the provider got Authorization %q", gw.auth[0])
	}

	wrong := "000000"
	if c[1] == wrong {
		wrong = "111111"
	}
	fill(t, ctx, map[string]string{"code": wrong})
	submit(t, ctx, "verify")
	expectPage(t, ctx, "Check your messages", "That code is not right")
	fill(t, ctx, map[string]string{"code": c[1]})
	submit(t, ctx, "verify")
	expectPage(t, ctx, "Choose a password")
	fill(t, ctx, map[string]string{"password": testPassword, "password2": testPassword})
	submit(t, ctx, "setpassword")
	expectPage(t, ctx, "Done")

	m := waitMemberPhase(t, org.Namespace, "phil", rosterv1.MemberPending)
	if m.Spec.Phone != phone || m.Spec.Email != "" {
		t.Fatalf("the member has phone %q email %q; want the proved phone %s and no email", m.Spec.Phone, m.Spec.Email, phone)
	}
	if n := mailsTo(phone); n != 0 {
		t.Fatalf("%d mails for a phone number", n)
	}

	// A new phone number on the profile is written only after the code texted to it.
	must(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		m := member(t, org.Namespace, "phil")
		m.Spec.Approval = rosterv1.ApprovalApproved
		return e2e.admin.Update(context.Background(), m)
	}))
	waitMemberPhase(t, org.Namespace, "phil", rosterv1.MemberActive)
	signIn(t, ctx, "phil")
	expectPage(t, ctx, "Your details")
	const newPhone = "+4915100000078"
	fill(t, ctx, map[string]string{"phone": newPhone})
	submit(t, ctx, "profile")
	expectPage(t, ctx, "Check your messages")
	if got := member(t, org.Namespace, "phil").Spec.Phone; got != phone {
		t.Fatalf("before the code the phone is %q, want the old %s", got, phone)
	}
	c = codePattern.FindStringSubmatch(gw.next(t, newPhone, 0))
	if c == nil {
		t.Fatal("no code in the text to the new number")
	}
	fill(t, ctx, map[string]string{"code": c[1]})
	submit(t, ctx, "verify")
	expectPage(t, ctx, "Your details", "Saved.")
	if got := member(t, org.Namespace, "phil").Spec.Phone; got != newPhone {
		t.Fatalf("after the code the phone is %q, want %s", got, newPhone)
	}
}

// TestModuleLinkAskToJoinByPhone: someone with only a phone asks to join a module; the code
// is texted, and their Collaboration carries the phone they proved and no email.
func TestModuleLinkAskToJoinByPhone(t *testing.T) {
	needE2E(t)
	gw := startSMSGateway(t)
	const secret = "sms-provider"
	org := newOrg(t, withModuleLink, withSMS(secret))
	must(t, e2e.k8s.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: org.Namespace,
		Labels: map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster}},
		StringData: map[string]string{notify.SecretKeyURL: gw.URL + "/send"}}))
	link := moduleLink(t, org, "apollo", 0)

	const phone = "+4915100000079"
	ctx := tab(t)
	open(t, ctx, link)
	expectPage(t, ctx, "Ask to join Project apollo")
	fill(t, ctx, map[string]string{"displayName": "Pia", "phone": phone})
	submit(t, ctx, "details")
	expectPage(t, ctx, "Check your messages")
	c := codePattern.FindStringSubmatch(gw.next(t, phone, 0))
	if c == nil {
		t.Fatal("no code in the text")
	}
	fill(t, ctx, map[string]string{"code": c[1]})
	submit(t, ctx, "verify")
	expectPage(t, ctx, "Done", "Your request to join Project apollo was sent.")

	collab := &rosterv1.Collaboration{}
	must(t, e2e.k8s.Get(context.Background(), client.ObjectKey{Namespace: org.Namespace,
		Name: membership.CollaborationName(org, rosterv1.Collaborator{Phone: phone})}, collab))
	if p := collab.Spec.Collaborator; p.Phone != phone || p.Email != "" || len(collab.Spec.Modules) != 1 ||
		collab.Spec.Modules[0].Approval != rosterv1.ModulePending {
		t.Fatalf("the collaboration is %+v", collab.Spec)
	}
}
