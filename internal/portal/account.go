package portal

import (
	"context"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
)

// Sign-in, sign-out and the profile page. A session is a cookie naming the account; every
// page reads the account's object again, so a lock or a removal takes effect on the next
// click, on every replica, with nothing to revoke.

func (s *Server) signinView(r *http.Request, login string) view {
	m := s.msgs(r)
	return view{messages: m, Title: m.T("signin.title"), Forms: []form{{ID: "signin", Action: "/signin", Submit: m.T("signin.go"), Fields: []field{
		{Name: "login", Label: m.T("field.login"), Type: "text", Value: login, Autocomplete: "username", Required: true},
		{Name: "password", Label: m.T("field.password"), Type: "password", Autocomplete: "current-password", Required: true},
	}}}}
}

func (s *Server) signinPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, s.signinView(r, ""))
}

// refusal is why an account may not sign in: a catalog key and its argument.
type refusal struct {
	key string
	arg string
}

// standing says whether the account's object lets the person in now.
func standing(obj client.Object, org *rosterv1.Organization) *refusal {
	switch o := obj.(type) {
	case *rosterv1.Member:
		switch o.Status.Phase {
		case rosterv1.MemberActive, rosterv1.MemberPending:
			return nil
		}
		return &refusal{key: "refused.noaccess"}
	case *rosterv1.ExternalUser:
		app := o.Spec.Application
		if org != nil {
			if a := membership.Application(org, app); a != nil {
				app = appName(a)
			}
		}
		switch o.Status.Phase {
		case rosterv1.ExternalUserActive:
			return nil
		case rosterv1.ExternalUserLocked:
			return &refusal{key: "refused.locked", arg: app}
		case rosterv1.ExternalUserWaitingForSeat:
			return &refusal{key: "refused.seat", arg: app}
		case rosterv1.ExternalUserPendingApproval:
			return &refusal{key: "refused.pending", arg: app}
		}
		return &refusal{key: "refused.noaccess"}
	}
	return &refusal{key: "refused.noaccess"}
}

func (s *Server) organizationOf(ctx context.Context, obj client.Object) *rosterv1.Organization {
	name := ""
	switch o := obj.(type) {
	case *rosterv1.Member:
		name = o.Spec.OrganizationRef.Name
	case *rosterv1.ExternalUser:
		name = o.Spec.OrganizationRef.Name
	}
	org := &rosterv1.Organization{}
	if err := s.cfg.Client.Get(ctx, client.ObjectKey{Namespace: obj.GetNamespace(), Name: name}, org); err != nil {
		return nil
	}
	return org
}

func (s *Server) signinSubmit(w http.ResponseWriter, r *http.Request) {
	login := strings.TrimSpace(r.PostFormValue("login"))
	pw := r.PostFormValue("password")
	if !s.perKey.allow("login:" + loginLabel(login)) {
		s.tooMany(w, r)
		return
	}
	m := s.msgs(r)
	wrong := func() {
		v := s.signinView(r, login)
		v.Error = m.T("signin.wrong")
		s.render(w, r, http.StatusUnauthorized, v)
	}
	if login == "" || len(pw) > maxPasswordLen {
		wrong()
		return
	}
	accounts, err := s.creds.find(r.Context(), login, pw)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var first *refusal
	for _, a := range accounts {
		obj, err := objectOf(r.Context(), s.cfg.APIReader, a)
		if err == errNoAccount {
			continue
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		org := s.organizationOf(r.Context(), obj)
		if why := standing(obj, org); why != nil {
			if first == nil {
				first = why
			}
			continue
		}
		if err := s.recordSignIn(r.Context(), obj); err != nil {
			s.fail(w, r, err)
			return
		}
		if err := s.cookies.set(w, cookieSession, session{Account: a, Expires: s.cfg.Clock.Now().Add(sessionTTL).Unix()}, sessionTTL); err != nil {
			s.fail(w, r, err)
			return
		}
		s.redirect(w, r, "/profile")
		return
	}
	if first != nil {
		// The password was right: telling the person why they cannot come in tells a
		// stranger nothing.
		s.refuse(w, r, http.StatusForbidden, first.key, []any{first.arg}, s.linkHome(r))
		return
	}
	wrong()
}

// recordSignIn writes status.lastLoginAt, the one status field a sign-in owns.
func (s *Server) recordSignIn(ctx context.Context, obj client.Object) error {
	now := metav1.NewTime(s.cfg.Clock.Now().UTC().Truncate(time.Second))
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"status":{"lastLoginAt":"`+now.Format(time.RFC3339)+`"}}`))
	return s.cfg.Client.Status().Patch(ctx, obj, patch)
}

func (s *Server) signout(w http.ResponseWriter, r *http.Request) {
	s.cookies.clear(w, cookieSession)
	s.cookies.clear(w, cookieFlow)
	m := s.msgs(r)
	// The page is rendered as signed out although the request still carried the cookie.
	r.Header.Del("Cookie")
	s.render(w, r, http.StatusOK, view{messages: m, Title: m.T("signout.title"), Intro: []string{m.T("signout.text")},
		Links: []link{s.linkSignin(r)}})
}

// signedIn reads the session and the account's object, refusing one that may no longer
// come in.
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request) (account, client.Object, *rosterv1.Organization, bool) {
	var sess session
	if !s.cookies.get(r, cookieSession, &sess) || sess.Expires < s.cfg.Clock.Now().Unix() {
		s.redirect(w, r, "/signin")
		return account{}, nil, nil, false
	}
	obj, err := objectOf(r.Context(), s.cfg.APIReader, sess.Account)
	if err != nil {
		s.cookies.clear(w, cookieSession)
		if err == errNoAccount {
			s.redirect(w, r, "/signin")
		} else {
			s.fail(w, r, err)
		}
		return account{}, nil, nil, false
	}
	org := s.organizationOf(r.Context(), obj)
	if why := standing(obj, org); why != nil {
		s.cookies.clear(w, cookieSession)
		s.refuse(w, r, http.StatusForbidden, why.key, []any{why.arg}, s.linkHome(r))
		return account{}, nil, nil, false
	}
	return sess.Account, obj, org, true
}

// personal is the person's own fields of either kind.
func personal(obj client.Object) (name, email, phone, username string) {
	switch o := obj.(type) {
	case *rosterv1.Member:
		return o.Spec.DisplayName, o.Spec.Email, o.Spec.Phone, o.Spec.Username
	case *rosterv1.ExternalUser:
		return o.Spec.DisplayName, o.Spec.Email, o.Spec.Phone, ""
	}
	return "", "", "", ""
}

func (s *Server) profileView(r *http.Request, obj client.Object, org *rosterv1.Organization, d details) view {
	m := s.msgs(r)
	v := view{messages: m, Title: m.T("profile.title"), Intro: []string{m.T("profile.intro")}, SignedIn: true}
	if org != nil {
		v.Org = org.Spec.DisplayName
	}
	if mem, ok := obj.(*rosterv1.Member); ok && mem.Status.Phase == rosterv1.MemberPending {
		v.Notice = m.T("profile.pending")
	}
	v.Forms = []form{{ID: "profile", Action: "/profile", Submit: m.T("profile.save"), Fields: []field{
		{Name: "displayName", Label: m.T("field.displayName"), Type: "text", Value: d.DisplayName, Autocomplete: "name", Required: true},
		{Name: "email", Label: m.T("field.email"), Type: "email", Value: d.Email, Autocomplete: "email"},
		{Name: "phone", Label: m.T("field.phone"), Type: "tel", Value: d.Phone, Autocomplete: "tel", Hint: m.T("field.phone.hint")},
	}}}
	return v
}

func (s *Server) profilePage(w http.ResponseWriter, r *http.Request) {
	_, obj, org, ok := s.signedIn(w, r)
	if !ok {
		return
	}
	name, email, phone, _ := personal(obj)
	v := s.profileView(r, obj, org, details{DisplayName: name, Email: email, Phone: phone})
	if r.URL.Query().Get("saved") != "" {
		v.Notice = s.msgs(r).T("profile.saved")
	}
	s.render(w, r, http.StatusOK, v)
}

// profileSubmit saves a new name at once; a new email address or phone number is saved
// only once the code sent there comes back.
func (s *Server) profileSubmit(w http.ResponseWriter, r *http.Request) {
	a, obj, org, ok := s.signedIn(w, r)
	if !ok {
		return
	}
	m := s.msgs(r)
	name, email, phone, _ := personal(obj)
	d := formDetails(r)
	problem := ""
	switch {
	case d.DisplayName == "" || len(d.DisplayName) > 128:
		problem = m.T("error.required", m.T("field.displayName"))
	case d.Email != email && d.Email != "" && !validEmail(d.Email):
		problem = m.T("error.email")
	case d.Phone != phone && d.Phone != "" && !phonePattern.MatchString(d.Phone):
		problem = m.T("error.phone")
	case d.Email == "" && email != "" && a.Kind == kindExternal:
		problem = m.T("error.emailNeeded")
	case d.Email == "" && d.Phone == "":
		problem = m.T("error.contact")
	}
	if problem != "" {
		v := s.profileView(r, obj, org, d)
		v.Error = problem
		s.render(w, r, http.StatusUnprocessableEntity, v)
		return
	}
	f := &flow{Kind: kindProfile, Namespace: a.Namespace, Org: a.Name, App: a.Kind, Token: a.UID,
		Details: details{DisplayName: d.DisplayName, Email: email, Phone: phone}, Expires: s.cfg.Clock.Now().Add(flowTTL).Unix()}
	// Only what a code proved is written: a new email first, else a new phone; a removed
	// one needs no proof.
	var to string
	switch {
	case d.Email != email && d.Email != "":
		f.Details.Email, to = d.Email, "email:"+d.Email
	case d.Phone != phone && d.Phone != "":
		f.Details.Phone, to = d.Phone, "sms:"+d.Phone
	}
	if d.Email == "" {
		f.Details.Email = ""
	}
	if d.Phone == "" {
		f.Details.Phone = ""
	}
	if to == "" {
		if err := s.writeProfile(r.Context(), a, f.Details); err != nil {
			s.fail(w, r, err)
			return
		}
		s.redirect(w, r, "/profile?saved=1")
		return
	}
	if d.DisplayName != name {
		// The name needs no code; save it now so that it is not lost if the code never
		// comes.
		if err := s.writeProfile(r.Context(), a, details{DisplayName: d.DisplayName, Email: email, Phone: phone}); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if msg := s.sendCode(r, f, org, to); msg != "" {
		v := s.profileView(r, obj, org, d)
		v.Error = msg
		s.render(w, r, http.StatusOK, v)
		return
	}
	if err := s.save(w, f); err != nil {
		s.fail(w, r, err)
		return
	}
	s.redirect(w, r, "/verify")
}

// profileOrg is the organization and account of a profile change in progress.
func (s *Server) profileOrg(ctx context.Context, f *flow) (*rosterv1.Organization, account, error) {
	a := account{Kind: f.App, Namespace: f.Namespace, Name: f.Org, UID: f.Token}
	obj, err := objectOf(ctx, s.cfg.APIReader, a)
	if err != nil {
		return nil, a, err
	}
	org := s.organizationOf(ctx, obj)
	if org == nil {
		return nil, a, errNoAccount
	}
	return org, a, nil
}

// applyProfile writes a change whose code came back, for the signed-in person only.
func (s *Server) applyProfile(w http.ResponseWriter, r *http.Request, f *flow) {
	a, _, _, ok := s.signedIn(w, r)
	if !ok {
		return
	}
	if a.Kind != f.App || a.Namespace != f.Namespace || a.Name != f.Org || a.UID != f.Token {
		s.refuse(w, r, http.StatusBadRequest, "refused.flow", nil, s.linkSignin(r))
		return
	}
	if err := s.writeProfile(r.Context(), a, f.Details); err != nil {
		s.fail(w, r, err)
		return
	}
	s.cookies.clear(w, cookieFlow)
	s.redirect(w, r, "/profile?saved=1")
}

// writeProfile writes the person's own fields as the portal, which the webhooks allow for
// these three fields only, and keeps the credential findable by the new address.
func (s *Server) writeProfile(ctx context.Context, a account, d details) error {
	var email, username string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj, err := objectOf(ctx, s.cfg.APIReader, a)
		if err != nil {
			return err
		}
		switch o := obj.(type) {
		case *rosterv1.Member:
			o.Spec.DisplayName, o.Spec.Email, o.Spec.Phone = d.DisplayName, d.Email, d.Phone
			username = o.Spec.Username
		case *rosterv1.ExternalUser:
			o.Spec.DisplayName, o.Spec.Email, o.Spec.Phone = d.DisplayName, d.Email, d.Phone
		}
		email = d.Email
		return s.cfg.Client.Update(ctx, obj)
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return s.creds.relabel(ctx, a, email, username)
}
