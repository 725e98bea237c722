// Package portal serves the pages that Roster's links open: sign-up through an invitation,
// the public link and the door number, the external portal's individual links,
// self-registration and sign-in, a request to join a module on its link, and a person's
// own profile. It runs as its own binary
// (cmd/portal) under its own ServiceAccount, because it faces the internet: the admission
// webhooks let that identity sign people up and change their own details, nothing more.
//
// It keeps nothing in memory between requests: sign-up progress and sessions travel in
// signed, encrypted cookies; codes and passwords are in Secrets of the portal's namespace;
// the rules (who may join, single-use links, unique usernames) are internal/membership's.
package portal

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/gorilla/csrf"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/netrange"
	"github.com/roster-dev/roster/internal/notify"
)

//go:embed templates/*.html static/*.css
var assets embed.FS

// Config is what the portal needs from its binary.
type Config struct {
	// Client reads through a cache with Roster's field indexes (controllers.SetupIndexes)
	// and writes as the portal's ServiceAccount.
	Client client.Client
	// APIReader reads past the cache: claims, codes, credentials, and objects just written.
	APIReader client.Reader
	// Notifier sends the verification codes, through the organization's own channels.
	Notifier notify.Notifier
	// Clock is what links and codes expire against; the real clock when nil.
	Clock clock.PassiveClock
	// Namespace is the portal's own namespace, where it keeps credentials and codes.
	Namespace string
	// Key signs and encrypts cookies and CSRF tokens and keys the code HMACs. Every replica
	// needs the same key; at least 32 random bytes.
	Key []byte
	// Secure marks cookies Secure: set it wherever the portal is reached over TLS.
	Secure bool
	// Limits are the rate limits; DefaultLimits when zero.
	Limits Limits
	// TrustedProxies are the ingress or load balancer addresses whose X-Forwarded-For the
	// rate limits believe. Without them every request behind a proxy shares the proxy's
	// address and budget.
	TrustedProxies netrange.List
	// Log receives one line per request: method, route pattern, status. Never a path, which
	// may carry a token.
	Log logr.Logger
}

// Server is the portal's HTTP handler.
type Server struct {
	cfg      Config
	acceptor *membership.Acceptor
	cookies  cookies
	codes    codeBook
	creds    credentials
	perIP    *limiter
	perKey   *limiter
	tmpl     *template.Template
	handler  http.Handler
}

// New builds the portal.
func New(cfg Config) (*Server, error) {
	if len(cfg.Key) < 32 {
		return nil, errors.New("the portal key must have at least 32 bytes")
	}
	if cfg.Namespace == "" {
		return nil, errors.New("the portal needs its own namespace for credentials and codes")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits()
	}
	tmpl, err := template.ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		acceptor: &membership.Acceptor{Client: cfg.Client, APIReader: cfg.APIReader, Clock: cfg.Clock},
		cookies:  newCookies(cfg.Key, cfg.Secure),
		codes:    codeBook{client: cfg.Client, reader: cfg.APIReader, namespace: cfg.Namespace, key: derive(cfg.Key, "codes"), clock: cfg.Clock},
		creds:    credentials{client: cfg.Client, reader: cfg.APIReader, namespace: cfg.Namespace},
		perIP:    newLimiter(cfg.Limits.PerIP),
		perKey:   newLimiter(cfg.Limits.PerSecret),
		tmpl:     tmpl,
	}
	s.handler = s.routes()
	return s, nil
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Sweep deletes expired codes every interval until ctx ends; one replica running it is
// enough, more do no harm.
func (s *Server) Sweep(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.codes.sweep(ctx); err != nil {
				s.cfg.Log.Error(err, "sweeping expired codes")
			}
		}
	}
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("POST /door", s.guard(s.door))
	mux.HandleFunc("GET /invite/{token}", s.guard(s.openInvite))
	mux.HandleFunc("GET /join/{token}", s.guard(s.openJoin))
	mux.HandleFunc("GET /portal/{token}", s.guard(s.openExternal))
	mux.HandleFunc("GET /module/{token}", s.guard(s.openModule))
	mux.HandleFunc("GET /register/{namespace}/{org}/{app}", s.openRegister)
	mux.HandleFunc("GET /signup", s.signupPage)
	mux.HandleFunc("POST /signup", s.guard(s.signupSubmit))
	mux.HandleFunc("GET /verify", s.verifyPage)
	mux.HandleFunc("POST /verify", s.guard(s.verifySubmit))
	mux.HandleFunc("POST /verify/resend", s.guard(s.verifyResend))
	mux.HandleFunc("GET /password", s.passwordPage)
	mux.HandleFunc("POST /password", s.guard(s.passwordSubmit))
	mux.HandleFunc("GET /done", s.donePage)
	mux.HandleFunc("GET /portal", s.signinPage)
	mux.HandleFunc("GET /signin", s.signinPage)
	mux.HandleFunc("POST /signin", s.guard(s.signinSubmit))
	mux.HandleFunc("POST /signout", s.signout)
	mux.HandleFunc("GET /profile", s.profilePage)
	mux.HandleFunc("POST /profile", s.guard(s.profileSubmit))
	mux.HandleFunc("GET /qr.png", s.qr)
	mux.HandleFunc("GET /static/style.css", s.stylesheet)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.refuse(w, r, http.StatusNotFound, "refused.notfound", nil, s.linkHome(r))
	})

	// CSRF is two locks. net/http's CrossOriginProtection refuses a form posted from another
	// origin, by Sec-Fetch-Site (or Origin), which browsers send whatever the referrer
	// policy. gorilla/csrf then wants its per-session token, masked anew on every page, in
	// every form. Its own Origin and Referer checks are left out: under Referrer-Policy:
	// no-referrer a browser sends neither a Referer nor a real Origin ("null"), and the
	// first lock has already judged the origin.
	protect := csrf.Protect(derive(s.cfg.Key, "csrf"), csrf.Secure(s.cfg.Secure), csrf.Path("/"), csrf.HttpOnly(true),
		csrf.SameSite(csrf.SameSiteLaxMode), csrf.FieldName("csrf"), csrf.CookieName("roster_csrf"),
		csrf.ErrorHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.refuse(w, r, http.StatusForbidden, "refused.csrf", nil, link{Href: "/", Label: s.msgs(r).T("next.home"), ID: "next"})
		})))
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.refuse(w, r, http.StatusForbidden, "refused.csrf", nil, s.linkHome(r))
	}))
	inner := protect(routed(mux))
	h := cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Origin")
		inner.ServeHTTP(w, csrf.PlaintextHTTPRequest(r))
	}))
	return s.headers(s.logged(h))
}

// headers sets the security headers on every answer.
func (s *Server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if s.cfg.Secure {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

type routeKey struct{}

// routed notes the route pattern the mux picks where logged can read it: the middleware in
// between hands the mux copies of the request.
func routed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := r.Context().Value(routeKey{}).(*string); ok {
			_, *p = mux.Handler(r)
		}
		mux.ServeHTTP(w, r)
	})
}

// logged logs each request by its route pattern, never its path: /invite/<token> is logged
// as "GET /invite/{token}".
func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		route := new(string)
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), routeKey{}, route)))
		s.cfg.Log.V(1).Info("request", "route", *route, "status", sw.status, "duration", time.Since(start).String())
	})
}

// guard applies the per-address rate limit to the requests that open, guess or send
// something.
func (s *Server) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.perIP.allow(clientIP(r, s.cfg.TrustedProxies)) {
			s.tooMany(w, r)
			return
		}
		h(w, r)
	}
}

func (s *Server) tooMany(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "60")
	s.refuse(w, r, http.StatusTooManyRequests, "refused.rate", nil, s.linkHome(r))
}

func (s *Server) stylesheet(w http.ResponseWriter, _ *http.Request) {
	b, _ := assets.ReadFile("static/style.css")
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}

// view is what the page template shows.
type view struct {
	messages
	Title    string
	Org      string
	Intro    []string
	Notice   string
	Error    string
	QR       bool
	Forms    []form
	Links    []link
	SignedIn bool
	CSRF     template.HTML
}

// Lang is the page's language.
func (v view) Lang() string { return v.lang }

type form struct {
	ID, Action, Submit string
	Fields             []field
	Secondary          bool
}

type field struct {
	Name, Label, Type, Value, Autocomplete, Inputmode, Hint string
	Required                                                bool
}

type link struct{ Href, Label, ID string }

func (s *Server) msgs(r *http.Request) messages { return pickLanguage(r) }

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, v view) {
	v.CSRF = csrf.TemplateField(r)
	var sess session
	v.SignedIn = s.cookies.get(r, cookieSession, &sess) && sess.Expires > s.cfg.Clock.Now().Unix()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := s.tmpl.ExecuteTemplate(w, "page", v); err != nil {
		s.cfg.Log.Error(err, "render", "route", r.Pattern)
	}
}

// refuse shows a page that says what happened and what to do next.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, key string, args []any, next ...link) {
	m := s.msgs(r)
	s.render(w, r, status, view{messages: m, Title: m.T(key + ".title"), Intro: []string{m.T(key+".text", args...)}, Links: next})
}

func (s *Server) linkHome(r *http.Request) link {
	return link{Href: "/", Label: s.msgs(r).T("next.home"), ID: "next"}
}

func (s *Server) linkSignin(r *http.Request) link {
	return link{Href: "/signin", Label: s.msgs(r).T("next.signin"), ID: "next"}
}

// fail shows the generic error page and logs the cause (which never holds a token: the
// membership errors do not quote them).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.cfg.Log.Error(err, "request failed", "route", r.Pattern)
	s.refuse(w, r, http.StatusInternalServerError, "refused.error", nil, s.linkHome(r))
}

func (s *Server) redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}
