package portal

import (
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"time"

	"github.com/gorilla/securecookie"
)

// The portal keeps no state in memory: what a person has done so far travels in cookies
// that are signed (HMAC-SHA256) and encrypted (AES-256), so the browser can neither read nor
// change them, and any replica can carry on. Cookies are HttpOnly, SameSite=Lax, and Secure
// where the portal is served over TLS.
const (
	cookieFlow    = "roster_flow"
	cookieSession = "roster_session"
	cookieDone    = "roster_done"
	flowTTL       = time.Hour
	sessionTTL    = 8 * time.Hour
)

// flow is a sign-up, registration or profile change in progress.
type flow struct {
	// Kind is which way the person came: kindInvite, kindJoin, kindDoor, kindExternal,
	// kindRegister, kindModule, or kindProfile for a change of their own details.
	Kind string `json:"k"`
	// Token is the link token the flow started with, exchanged here so that it leaves the
	// address bar after the first redirect.
	Token string `json:"t,omitempty"`
	// Namespace, Org and App say where a door number, public link or self-registration
	// leads.
	Namespace string `json:"n,omitempty"`
	Org       string `json:"o,omitempty"`
	App       string `json:"a,omitempty"`
	// Details are what the person typed.
	Details details `json:"d"`
	// Sent is the address the newest code went to; Verified the one proved with a code (or
	// vouched for by an admin).
	Sent     string `json:"s,omitempty"`
	Verified string `json:"v,omitempty"`
	// Expires is when the flow ends, in Unix seconds.
	Expires int64 `json:"e"`
}

// Flow kinds.
const (
	kindInvite   = "invite"
	kindJoin     = "join"
	kindDoor     = "door"
	kindExtLink  = "external"
	kindRegister = "register"
	kindProfile  = "profile"
	// kindModule asks to join one module on its link: details, a code, done. There is no
	// password: a collaborator has no account on the portal.
	kindModule = "module"
)

// details are the fields of the forms.
type details struct {
	Username    string `json:"u,omitempty"`
	DisplayName string `json:"n,omitempty"`
	Email       string `json:"e,omitempty"`
	Phone       string `json:"p,omitempty"`
	Department  string `json:"dp,omitempty"`
	Position    string `json:"po,omitempty"`
	WorkNumber  string `json:"w,omitempty"`
	Location    string `json:"l,omitempty"`
}

// session is a signed-in person.
type session struct {
	Account account `json:"a"`
	Expires int64   `json:"e"`
}

// done is what the last page says after a sign-up.
type done struct {
	Message string `json:"m"`
	Org     string `json:"o"`
	// NoAccount leaves out the sign-in link: asking to join a module makes no account.
	NoAccount bool `json:"na,omitempty"`
}

// cookies encodes the portal's cookies.
type cookies struct {
	sc     *securecookie.SecureCookie
	secure bool
}

// derive makes an independent key for each use from the one key the portal is given.
func derive(master []byte, use string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(use))
	return m.Sum(nil)
}

func newCookies(master []byte, secure bool) cookies {
	sc := securecookie.New(derive(master, "cookie-hash"), derive(master, "cookie-block"))
	sc.MaxAge(int(sessionTTL.Seconds()))
	sc.SetSerializer(securecookie.JSONEncoder{})
	return cookies{sc: sc, secure: secure}
}

func (c cookies) set(w http.ResponseWriter, name string, v any, ttl time.Duration) error {
	enc, err := c.sc.Encode(name, v)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: enc, Path: "/", MaxAge: int(ttl.Seconds()), HttpOnly: true,
		Secure: c.secure, SameSite: http.SameSiteLaxMode})
	return nil
}

func (c cookies) get(r *http.Request, name string, v any) bool {
	ck, err := r.Cookie(name)
	if err != nil {
		return false
	}
	return c.sc.Decode(name, ck.Value, v) == nil
}

func (c cookies) clear(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
}
