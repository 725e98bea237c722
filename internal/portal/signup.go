package portal

import (
	"context"
	"errors"
	"net/http"
	"net/mail"
	"regexp"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/notify"
)

// The sign-up is four pages: details, code, password, done. Each link exchanges its token
// for the flow cookie and sends the browser to /signup, so the token leaves the address
// bar, the history and (with no-referrer) every Referer after the first hop.

// start puts a new flow in the cookie and goes to the details page.
func (s *Server) start(w http.ResponseWriter, r *http.Request, f flow) {
	f.Expires = s.cfg.Clock.Now().Add(flowTTL).Unix()
	s.cookies.clear(w, cookieDone)
	if err := s.cookies.set(w, cookieFlow, f, flowTTL); err != nil {
		s.fail(w, r, err)
		return
	}
	s.redirect(w, r, "/signup")
}

// token reads a link's token and applies the per-link rate limit.
func (s *Server) token(w http.ResponseWriter, r *http.Request) (string, bool) {
	t := r.PathValue("token")
	if !s.perKey.allow("token:" + linktoken.Hash(t)) {
		s.tooMany(w, r)
		return "", false
	}
	return t, true
}

func (s *Server) openInvite(w http.ResponseWriter, r *http.Request) {
	t, ok := s.token(w, r)
	if !ok {
		return
	}
	in, err := s.acceptor.Lookup(r.Context(), t)
	if err != nil {
		s.refuseLink(w, r, err)
		return
	}
	m := in.Member.Spec
	s.start(w, r, flow{Kind: kindInvite, Token: t, Namespace: in.Organization.Namespace, Org: in.Organization.Name,
		Details: details{DisplayName: m.DisplayName, Email: m.Email, Phone: m.Phone, Department: m.Department, Position: m.Position,
			WorkNumber: m.WorkNumber, Location: m.Location, Username: in.Invitation.Spec.Invitee.Username}})
}

func (s *Server) openJoin(w http.ResponseWriter, r *http.Request) {
	t, ok := s.token(w, r)
	if !ok {
		return
	}
	org, err := s.acceptor.OrganizationForPublicLink(r.Context(), t)
	if err == nil && !org.Spec.PublicInvitation.Enabled {
		err = membership.ErrJoinClosed
	}
	if err != nil {
		s.refuseLink(w, r, err)
		return
	}
	s.start(w, r, flow{Kind: kindJoin, Token: t, Namespace: org.Namespace, Org: org.Name})
}

var doorPattern = regexp.MustCompile(`^[0-9]{6,10}$`)

func (s *Server) door(w http.ResponseWriter, r *http.Request) {
	d := strings.TrimSpace(r.PostFormValue("door"))
	if !doorPattern.MatchString(d) {
		s.refuse(w, r, http.StatusNotFound, "refused.door", nil, s.linkHome(r))
		return
	}
	org, err := s.acceptor.OrganizationForDoorNumber(r.Context(), d)
	if err == nil && !org.Spec.PublicInvitation.Enabled {
		err = membership.ErrNoDoorNumber // closed looks the same as unknown
	}
	if err != nil {
		s.refuseLink(w, r, err)
		return
	}
	s.start(w, r, flow{Kind: kindDoor, Namespace: org.Namespace, Org: org.Name})
}

func (s *Server) openExternal(w http.ResponseWriter, r *http.Request) {
	t, ok := s.token(w, r)
	if !ok {
		return
	}
	in, err := s.acceptor.LookupExternal(r.Context(), t)
	if err != nil {
		s.refuseLink(w, r, err)
		return
	}
	x := in.User.Spec
	s.start(w, r, flow{Kind: kindExtLink, Token: t, Namespace: in.Organization.Namespace, Org: in.Organization.Name, App: x.Application,
		Details: details{DisplayName: x.DisplayName, Email: x.Email, Phone: x.Phone}})
}

// openModule opens an organization's link for asking to join one module.
func (s *Server) openModule(w http.ResponseWriter, r *http.Request) {
	t, ok := s.token(w, r)
	if !ok {
		return
	}
	in, err := s.acceptor.ModuleForLink(r.Context(), t)
	if err != nil {
		s.refuseLink(w, r, err)
		return
	}
	s.start(w, r, flow{Kind: kindModule, Token: t, Namespace: in.Organization.Namespace, Org: in.Organization.Name})
}

func (s *Server) openRegister(w http.ResponseWriter, r *http.Request) {
	org := &rosterv1.Organization{}
	err := s.cfg.Client.Get(r.Context(), client.ObjectKey{Namespace: r.PathValue("namespace"), Name: r.PathValue("org")}, org)
	if err != nil {
		if client.IgnoreNotFound(err) == nil {
			err = membership.ErrPortalClosed
		}
		s.refuseLink(w, r, err)
		return
	}
	app := membership.Application(org, r.PathValue("app"))
	if app == nil || !app.Portal.Enabled || !app.Portal.SelfRegistration {
		s.refuseLink(w, r, membership.ErrPortalClosed)
		return
	}
	s.start(w, r, flow{Kind: kindRegister, Namespace: org.Namespace, Org: org.Name, App: app.Name})
}

// refuseLink shows why a link or door number leads nowhere. Unknown, used, replaced and
// cancelled links get one answer, so the page tells a stranger nothing.
func (s *Server) refuseLink(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, membership.ErrInvalidLink):
		s.refuse(w, r, http.StatusNotFound, "refused.link", nil, s.linkHome(r))
	case errors.Is(err, membership.ErrExpired):
		s.refuse(w, r, http.StatusGone, "refused.expired", nil, s.linkHome(r))
	case errors.Is(err, membership.ErrNoDoorNumber):
		s.refuse(w, r, http.StatusNotFound, "refused.door", nil, s.linkHome(r))
	case errors.Is(err, membership.ErrJoinClosed), errors.Is(err, membership.ErrPortalClosed):
		s.refuse(w, r, http.StatusForbidden, "refused.closed", nil, s.linkHome(r))
	case errors.Is(err, membership.ErrAlreadyRegistered):
		s.refuse(w, r, http.StatusConflict, "refused.registered", nil, s.linkSignin(r))
	default:
		s.fail(w, r, err)
	}
}

// where is what a flow leads to, looked up again on every page, so that a link used or
// cancelled meanwhile is noticed at once.
type where struct {
	org     *rosterv1.Organization
	app     *rosterv1.Application
	inviter string
	xu      *rosterv1.ExternalUser
	// module is the link's module, for a request to join one.
	module *rosterv1.ModuleLink
}

func (s *Server) where(ctx context.Context, f *flow) (*where, error) {
	switch f.Kind {
	case kindInvite:
		in, err := s.acceptor.Lookup(ctx, f.Token)
		if err != nil {
			return nil, err
		}
		return &where{org: in.Organization, inviter: in.Invitation.Spec.InvitedBy}, nil
	case kindJoin:
		org, err := s.acceptor.OrganizationForPublicLink(ctx, f.Token)
		if err == nil && !org.Spec.PublicInvitation.Enabled {
			err = membership.ErrJoinClosed
		}
		if err != nil {
			return nil, err
		}
		return &where{org: org}, nil
	case kindExtLink:
		in, err := s.acceptor.LookupExternal(ctx, f.Token)
		if err != nil {
			return nil, err
		}
		return &where{org: in.Organization, app: in.Application, xu: in.User}, nil
	case kindModule:
		in, err := s.acceptor.ModuleForLink(ctx, f.Token)
		if err != nil {
			return nil, err
		}
		return &where{org: in.Organization, module: &in.Link}, nil
	case kindDoor, kindRegister:
		org := &rosterv1.Organization{}
		if err := s.cfg.Client.Get(ctx, client.ObjectKey{Namespace: f.Namespace, Name: f.Org}, org); err != nil {
			if client.IgnoreNotFound(err) == nil {
				return nil, membership.ErrJoinClosed
			}
			return nil, err
		}
		w := &where{org: org}
		if f.Kind == kindDoor && !org.Spec.PublicInvitation.Enabled {
			return nil, membership.ErrJoinClosed
		}
		if f.Kind == kindRegister {
			w.app = membership.Application(org, f.App)
			if w.app == nil || !w.app.Portal.Enabled || !w.app.Portal.SelfRegistration {
				return nil, membership.ErrPortalClosed
			}
		}
		return w, nil
	}
	return nil, membership.ErrInvalidLink
}

// current reads the flow cookie and what it leads to, or answers with a refusal.
func (s *Server) current(w http.ResponseWriter, r *http.Request) (*flow, *where, bool) {
	var f flow
	if !s.cookies.get(r, cookieFlow, &f) || f.Expires < s.cfg.Clock.Now().Unix() || f.Kind == kindProfile {
		s.refuse(w, r, http.StatusBadRequest, "refused.flow", nil, s.linkHome(r))
		return nil, nil, false
	}
	wh, err := s.where(r.Context(), &f)
	if err != nil {
		s.cookies.clear(w, cookieFlow)
		s.refuseLink(w, r, err)
		return nil, nil, false
	}
	return &f, wh, true
}

func (s *Server) save(w http.ResponseWriter, f *flow) error {
	return s.cookies.set(w, cookieFlow, f, time.Until(time.Unix(f.Expires, 0)))
}

func isMemberFlow(kind string) bool {
	return kind == kindInvite || kind == kindJoin || kind == kindDoor
}

// needsEmail says whether a flow takes only an email address: an external user signs in
// with theirs. Members, and people asking to join a module, may give a phone instead.
func needsEmail(kind string) bool { return kind == kindExtLink || kind == kindRegister }

// moduleName is how the pages name a module: "Project apollo".
func moduleName(m messages, l *rosterv1.ModuleLink) string {
	return m.T("module."+string(l.Kind)) + " " + l.Name
}

func appName(a *rosterv1.Application) string {
	if a.DisplayName != "" {
		return a.DisplayName
	}
	return a.Name
}

func (s *Server) signupView(r *http.Request, f *flow, wh *where) view {
	m := s.msgs(r)
	v := view{messages: m, Org: wh.org.Spec.DisplayName}
	switch f.Kind {
	case kindInvite:
		v.Title = m.T("signup.title.invite", wh.org.Spec.DisplayName)
		if wh.inviter != "" {
			v.Intro = append(v.Intro, m.T("signup.invitedBy", wh.inviter))
		}
	case kindJoin, kindDoor:
		v.Title = m.T("signup.title.join", wh.org.Spec.DisplayName)
		v.Intro = append(v.Intro, m.T("signup.approval"))
		v.QR = f.Kind == kindJoin
	case kindModule:
		v.Title = m.T("signup.title.module", moduleName(m, wh.module))
		v.Intro = append(v.Intro, m.T("signup.module", wh.org.Spec.DisplayName, moduleName(m, wh.module)))
	default:
		v.Title = m.T("signup.title.ext", appName(wh.app))
	}
	v.Intro = append(v.Intro, m.T("signup.intro"))
	d := f.Details
	var fields []field
	required := map[rosterv1.MemberField]bool{}
	if isMemberFlow(f.Kind) {
		for _, rf := range wh.org.Spec.JoinRules.RequiredFields {
			required[rf] = true
		}
		fields = append(fields, field{Name: "username", Label: m.T("field.username"), Type: "text", Value: d.Username, Autocomplete: "username",
			Hint: m.T("field.username.hint"), Required: true})
	}
	fields = append(fields,
		field{Name: "displayName", Label: m.T("field.displayName"), Type: "text", Value: d.DisplayName, Autocomplete: "name", Required: true},
		field{Name: "email", Label: m.T("field.email"), Type: "email", Value: d.Email, Autocomplete: "email",
			Required: required["email"] || needsEmail(f.Kind)},
		field{Name: "phone", Label: m.T("field.phone"), Type: "tel", Value: d.Phone, Autocomplete: "tel", Hint: m.T("field.phone.hint"),
			Required: required["phone"]})
	work := []struct {
		f     rosterv1.MemberField
		value string
		auto  string
	}{{"department", d.Department, "organization-title"}, {"position", d.Position, "organization-title"},
		{"workNumber", d.WorkNumber, "tel"}, {"location", d.Location, "address-level2"}}
	for _, wf := range work {
		if required[wf.f] {
			fields = append(fields, field{Name: string(wf.f), Label: m.T("field." + string(wf.f)), Type: "text", Value: wf.value,
				Autocomplete: wf.auto, Required: true})
		}
	}
	v.Forms = []form{{ID: "details", Action: "/signup", Submit: m.T("signup.next"), Fields: fields}}
	return v
}

func (s *Server) signupPage(w http.ResponseWriter, r *http.Request) {
	f, wh, ok := s.current(w, r)
	if !ok {
		return
	}
	v := s.signupView(r, f, wh)
	v.Error = r.URL.Query().Get("e")
	if v.Error != "" {
		v.Error = s.msgs(r).T(v.Error) // only catalog keys are shown
	}
	s.render(w, r, http.StatusOK, v)
}

var (
	usernamePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.@_]*[a-z0-9])?$`)
	phonePattern    = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

// check says what is wrong with the details, as a page text, or "".
func check(m messages, kind string, d details, org *rosterv1.Organization) string {
	if isMemberFlow(kind) && (len(d.Username) > 253 || !usernamePattern.MatchString(d.Username)) {
		return m.T("error.username")
	}
	var missing []string
	if d.DisplayName == "" {
		missing = append(missing, m.T("field.displayName"))
	}
	if isMemberFlow(kind) {
		for _, rf := range org.Spec.JoinRules.RequiredFields {
			if valueOf(d, rf) == "" {
				missing = append(missing, m.T("field."+string(rf)))
			}
		}
	}
	switch {
	case len(missing) > 0:
		return m.T("error.required", strings.Join(missing, ", "))
	case len(d.DisplayName) > 128 || len(d.Department) > 128 || len(d.Position) > 128 || len(d.Location) > 128 || len(d.WorkNumber) > 64:
		return m.T("error.required", m.T("field.displayName"))
	case needsEmail(kind) && d.Email == "":
		return m.T("error.emailNeeded")
	case d.Email == "" && d.Phone == "":
		return m.T("error.contact")
	case d.Email != "" && !validEmail(d.Email):
		return m.T("error.email")
	case d.Phone != "" && !phonePattern.MatchString(d.Phone):
		return m.T("error.phone")
	}
	return ""
}

func validEmail(e string) bool {
	a, err := mail.ParseAddress(e)
	return err == nil && a.Address == e && len(e) <= 254 && a.Name == ""
}

func valueOf(d details, f rosterv1.MemberField) string {
	switch f {
	case "department":
		return d.Department
	case "position":
		return d.Position
	case "workNumber":
		return d.WorkNumber
	case "location":
		return d.Location
	case "email":
		return d.Email
	case "phone":
		return d.Phone
	}
	return ""
}

func formDetails(r *http.Request) details {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return details{Username: strings.ToLower(v("username")), DisplayName: v("displayName"), Email: strings.ToLower(v("email")),
		Phone: strings.ReplaceAll(v("phone"), " ", ""), Department: v("department"), Position: v("position"), WorkNumber: v("workNumber"),
		Location: v("location")}
}

// target is where a code for these details goes: the email address where there is one (a
// link sent to one address makes no account for another unless that one is proved), else
// the phone.
func target(d details) string {
	if d.Email != "" {
		return "email:" + d.Email
	}
	if d.Phone != "" {
		return "sms:" + d.Phone
	}
	return ""
}

func (s *Server) signupSubmit(w http.ResponseWriter, r *http.Request) {
	f, wh, ok := s.current(w, r)
	if !ok {
		return
	}
	d := formDetails(r)
	if f.Kind == kindInvite && f.Details.Username != "" {
		d.Username = f.Details.Username // a contact invitation names the account
	}
	f.Details = d
	if msg := check(s.msgs(r), f.Kind, d, wh.org); msg != "" {
		v := s.signupView(r, f, wh)
		v.Error = msg
		s.render(w, r, http.StatusUnprocessableEntity, v)
		return
	}
	to := target(d)
	f.Sent, f.Verified = "", ""
	// An admin who chose "without contact confirmation" vouches for the address they gave,
	// and for that address only.
	if f.Kind == kindExtLink && wh.xu.Spec.Invitation.SkipContactConfirmation && wh.xu.Spec.Email != "" &&
		strings.EqualFold(wh.xu.Spec.Email, d.Email) {
		f.Verified = to
		if err := s.save(w, f); err != nil {
			s.fail(w, r, err)
			return
		}
		s.redirect(w, r, "/password")
		return
	}
	if msg := s.sendCode(r, f, wh.org, to); msg != "" {
		v := s.signupView(r, f, wh)
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

// subject is what a code verifies: the flow's link or organization, and the address.
func subject(f *flow, address string) string {
	switch f.Kind {
	case kindInvite, kindExtLink, kindModule:
		return f.Kind + "|" + linktoken.Hash(f.Token) + "|" + address
	}
	return f.Kind + "|" + f.Namespace + "/" + f.Org + "/" + f.App + "|" + address
}

// sendCode issues a code for the flow and sends it to address through the organization's
// channels. It returns a page text when it cannot.
func (s *Server) sendCode(r *http.Request, f *flow, org *rosterv1.Organization, address string) string {
	m := s.msgs(r)
	ctx := r.Context()
	if !s.perKey.allow("send:" + linktoken.Hash(subject(f, address))) {
		return m.T("error.tooSoon")
	}
	settings, err := notify.ForOrganization(ctx, s.cfg.Client, org)
	channel, to := notify.ChannelEmail, notify.Recipient{Name: f.Details.DisplayName}
	if kind, addr, _ := strings.Cut(address, ":"); kind == "sms" {
		channel, to.Phone = notify.ChannelSMS, addr
		if settings.SMS == nil {
			return m.T("error.noChannel")
		}
	} else {
		to.Email = addr
		if settings.Email == nil {
			return m.T("error.noChannel")
		}
	}
	if err != nil {
		s.cfg.Log.Error(err, "notification settings", "organization", org.Namespace+"/"+org.Name)
		return m.T("error.noChannel")
	}
	code, err := s.codes.issue(ctx, subject(f, address), address)
	if errors.Is(err, errTooSoon) {
		return m.T("error.tooSoon")
	}
	if err != nil {
		s.cfg.Log.Error(err, "issue code")
		return m.T("error.sendFailed")
	}
	sendCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	now := s.cfg.Clock.Now()
	err = s.cfg.Notifier.Send(sendCtx, settings, channel, notify.Message{
		Key:      "portal-code/" + linktoken.Hash(subject(f, address))[:32] + "/" + now.UTC().Format("20060102T150405.000000000"),
		Template: notify.TemplateVerificationCode,
		To:       to,
		Data: map[string]any{"Code": code, "ExpiresAt": now.Add(codeTTL), "OrganizationName": org.Spec.DisplayName,
			"InviteeName": f.Details.DisplayName},
	})
	if err != nil {
		s.cfg.Log.Error(err, "send code", "organization", org.Namespace+"/"+org.Name, "channel", channel)
		return m.T("error.sendFailed")
	}
	f.Sent = address
	return ""
}

// masked shows where a code went without spelling the address out in full.
func masked(address string) string {
	_, a, _ := strings.Cut(address, ":")
	if user, domain, ok := strings.Cut(a, "@"); ok {
		if len(user) > 2 {
			user = user[:2] + strings.Repeat("•", 3)
		}
		return user + "@" + domain
	}
	if len(a) > 4 {
		return strings.Repeat("•", 4) + a[len(a)-4:]
	}
	return a
}

func (s *Server) verifyView(r *http.Request, f *flow, org string) view {
	m := s.msgs(r)
	return view{messages: m, Org: org, Title: m.T("verify.title"), Intro: []string{m.T("verify.intro", masked(f.Sent))},
		Forms: []form{
			{ID: "verify", Action: "/verify", Submit: m.T("verify.go"), Fields: []field{{Name: "code", Label: m.T("field.code"), Type: "text",
				Autocomplete: "one-time-code", Inputmode: "numeric", Hint: m.T("field.code.hint"), Required: true}}},
			{ID: "resend", Action: "/verify/resend", Submit: m.T("verify.resend"), Secondary: true},
		}}
}

// anyFlow reads the flow cookie, a sign-up's or a profile change's.
func (s *Server) anyFlow(w http.ResponseWriter, r *http.Request) (*flow, bool) {
	var f flow
	if !s.cookies.get(r, cookieFlow, &f) || f.Expires < s.cfg.Clock.Now().Unix() || f.Sent == "" {
		s.refuse(w, r, http.StatusBadRequest, "refused.flow", nil, s.linkHome(r))
		return nil, false
	}
	return &f, true
}

// flowOrg is the organization a flow is about, for the page header and the channels.
func (s *Server) flowOrg(w http.ResponseWriter, r *http.Request, f *flow) (*rosterv1.Organization, bool) {
	if f.Kind == kindProfile {
		org, _, err := s.profileOrg(r.Context(), f)
		if err != nil {
			s.cookies.clear(w, cookieFlow)
			s.refuse(w, r, http.StatusBadRequest, "refused.flow", nil, s.linkSignin(r))
			return nil, false
		}
		return org, true
	}
	_, wh, ok := s.current(w, r)
	if !ok {
		return nil, false
	}
	return wh.org, true
}

func (s *Server) verifyPage(w http.ResponseWriter, r *http.Request) {
	f, ok := s.anyFlow(w, r)
	if !ok {
		return
	}
	org, ok := s.flowOrg(w, r, f)
	if !ok {
		return
	}
	s.render(w, r, http.StatusOK, s.verifyView(r, f, org.Spec.DisplayName))
}

func (s *Server) verifySubmit(w http.ResponseWriter, r *http.Request) {
	f, ok := s.anyFlow(w, r)
	if !ok {
		return
	}
	org, ok := s.flowOrg(w, r, f)
	if !ok {
		return
	}
	subj := subject(f, f.Sent)
	if !s.perKey.allow("code:" + linktoken.Hash(subj)) {
		s.tooMany(w, r)
		return
	}
	code := strings.TrimSpace(r.PostFormValue("code"))
	res, left, err := s.codes.check(r.Context(), subj, f.Sent, code)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	m := s.msgs(r)
	switch res {
	case codeWrong:
		v := s.verifyView(r, f, org.Spec.DisplayName)
		v.Error = m.T("verify.wrong", left)
		s.render(w, r, http.StatusUnprocessableEntity, v)
		return
	case codeExhausted, codeExpired:
		v := view{messages: m, Org: org.Spec.DisplayName, Title: m.T("refused.code.title"), Intro: []string{m.T("refused.code.text")},
			Forms: []form{{ID: "resend", Action: "/verify/resend", Submit: m.T("next.newcode")}}}
		s.render(w, r, http.StatusGone, v)
		return
	}
	f.Verified = f.Sent
	if f.Kind == kindProfile {
		s.applyProfile(w, r, f)
		return
	}
	if f.Kind == kindModule {
		s.askToJoin(w, r, f)
		return
	}
	if err := s.save(w, f); err != nil {
		s.fail(w, r, err)
		return
	}
	s.redirect(w, r, "/password")
}

func (s *Server) verifyResend(w http.ResponseWriter, r *http.Request) {
	f, ok := s.anyFlow(w, r)
	if !ok {
		return
	}
	org, ok := s.flowOrg(w, r, f)
	if !ok {
		return
	}
	v := s.verifyView(r, f, org.Spec.DisplayName)
	if msg := s.sendCode(r, f, org, f.Sent); msg != "" {
		v.Error = msg
	} else {
		v.Notice = s.msgs(r).T("verify.resent")
	}
	s.render(w, r, http.StatusOK, v)
}

func (s *Server) passwordView(r *http.Request, org string) view {
	m := s.msgs(r)
	return view{messages: m, Org: org, Title: m.T("password.title"), Intro: []string{m.T("password.intro")},
		Forms: []form{{ID: "setpassword", Action: "/password", Submit: m.T("password.go"), Fields: []field{
			{Name: "password", Label: m.T("field.password"), Type: "password", Autocomplete: "new-password", Hint: m.T("field.password.hint"), Required: true},
			{Name: "password2", Label: m.T("field.password2"), Type: "password", Autocomplete: "new-password", Required: true},
		}}}}
}

// verified reads a sign-up flow whose address is proved.
func (s *Server) verified(w http.ResponseWriter, r *http.Request) (*flow, *where, bool) {
	f, wh, ok := s.current(w, r)
	if !ok {
		return nil, nil, false
	}
	if f.Verified == "" || f.Verified != target(f.Details) || f.Kind == kindModule {
		// A request to join a module is done once the code is right; it has no password.
		s.redirect(w, r, "/signup")
		return nil, nil, false
	}
	return f, wh, true
}

// askToJoin records the request of a person who proved their address to join the module of
// their link, and says it was sent. The page is the same whatever the request found (a new
// request, one made before, someone already in the module), so that it tells nobody
// whether a person collaborates with the organization.
func (s *Server) askToJoin(w http.ResponseWriter, r *http.Request, f *flow) {
	wh, err := s.where(r.Context(), f)
	if err == nil && f.Verified != target(f.Details) {
		err = membership.ErrInvalidLink
	}
	if err != nil {
		s.cookies.clear(w, cookieFlow)
		s.refuseLink(w, r, err)
		return
	}
	d := f.Details
	if _, err := s.acceptor.AskToJoin(r.Context(), wh.org, *wh.module,
		rosterv1.Collaborator{DisplayName: d.DisplayName, Email: d.Email, Phone: d.Phone}); err != nil {
		if errors.Is(err, membership.ErrJoinClosed) {
			s.cookies.clear(w, cookieFlow)
			s.refuseLink(w, r, err)
			return
		}
		s.fail(w, r, err)
		return
	}
	s.cookies.clear(w, cookieFlow)
	m := s.msgs(r)
	org := wh.org.Spec.DisplayName
	if err := s.cookies.set(w, cookieDone, done{Message: m.T("done.module", moduleName(m, wh.module), org), Org: org, NoAccount: true},
		10*time.Minute); err != nil {
		s.fail(w, r, err)
		return
	}
	s.redirect(w, r, "/done")
}

func (s *Server) passwordPage(w http.ResponseWriter, r *http.Request) {
	_, wh, ok := s.verified(w, r)
	if !ok {
		return
	}
	s.render(w, r, http.StatusOK, s.passwordView(r, wh.org.Spec.DisplayName))
}

func (s *Server) passwordSubmit(w http.ResponseWriter, r *http.Request) {
	f, wh, ok := s.verified(w, r)
	if !ok {
		return
	}
	m := s.msgs(r)
	pw := r.PostFormValue("password")
	if msg := passwordProblem(m, pw, r.PostFormValue("password2")); msg != "" {
		v := s.passwordView(r, wh.org.Spec.DisplayName)
		v.Error = msg
		s.render(w, r, http.StatusUnprocessableEntity, v)
		return
	}
	hash, err := hashPassword(pw)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	msg, err := s.finish(r.Context(), m, f, wh, hash)
	switch {
	case errors.Is(err, membership.ErrUsernameTaken):
		s.redirect(w, r, "/signup?e=error.usernameTaken")
		return
	case err != nil:
		var missing *membership.MissingFieldsError
		if errors.As(err, &missing) {
			s.redirect(w, r, "/signup")
			return
		}
		s.cookies.clear(w, cookieFlow)
		s.refuseLink(w, r, err)
		return
	}
	s.cookies.clear(w, cookieFlow)
	if err := s.cookies.set(w, cookieDone, done{Message: msg, Org: wh.org.Spec.DisplayName}, 10*time.Minute); err != nil {
		s.fail(w, r, err)
		return
	}
	s.redirect(w, r, "/done")
}

func passwordProblem(m messages, pw, again string) string {
	switch {
	case len([]rune(pw)) < minPasswordLen || len(pw) > maxPasswordLen:
		return m.T("password.short")
	case pw != again:
		return m.T("password.mismatch")
	}
	return ""
}

// finish signs the person up through internal/membership and keeps their password. It
// returns what the done page says.
func (s *Server) finish(ctx context.Context, m messages, f *flow, wh *where, hash string) (string, error) {
	d := f.Details
	signUp := membership.SignUp{Username: d.Username, DisplayName: d.DisplayName, Email: d.Email, Phone: d.Phone,
		WorkDetails: rosterv1.WorkDetails{Department: d.Department, Position: d.Position, WorkNumber: d.WorkNumber, Location: d.Location}}
	reg := membership.ExternalRegistration{DisplayName: d.DisplayName, Email: d.Email, Phone: d.Phone}
	org := wh.org.Spec.DisplayName
	switch f.Kind {
	case kindInvite:
		mem, err := s.acceptor.Accept(ctx, f.Token, signUp)
		if err != nil {
			return "", err
		}
		if err := s.creds.store(ctx, accountOf(mem), mem.Spec.Email, mem.Spec.Username, hash); err != nil {
			return "", err
		}
		p := mem.Spec.Provenance
		if mem.Spec.Approval == rosterv1.ApprovalNone && membership.RequiresApproval(p.JoinMethod, p.InviterRole, wh.org.Spec.JoinRules) {
			return m.T("done.pending", org), nil
		}
		return m.T("done.active", org), nil
	case kindJoin, kindDoor:
		how := rosterv1.JoinMethodPublicLink
		if f.Kind == kindDoor {
			how = rosterv1.JoinMethodDoorNumber
		}
		mem, err := s.acceptor.Join(ctx, wh.org, how, signUp)
		if err != nil {
			return "", err
		}
		if err := s.creds.store(ctx, accountOf(mem), mem.Spec.Email, mem.Spec.Username, hash); err != nil {
			return "", err
		}
		return m.T("done.pending", org), nil
	case kindExtLink:
		x, err := s.acceptor.RegisterExternal(ctx, f.Token, reg)
		if err != nil {
			return "", err
		}
		if err := s.creds.store(ctx, accountOf(x), x.Spec.Email, "", hash); err != nil {
			return "", err
		}
		return m.T("done.extActive", appName(wh.app)), nil
	case kindRegister:
		x, err := s.acceptor.SelfRegister(ctx, wh.org, wh.app.Name, reg)
		if err != nil {
			return "", err
		}
		if err := s.creds.store(ctx, accountOf(x), x.Spec.Email, "", hash); err != nil {
			return "", err
		}
		if wh.app.HoldsSelfRegistration(&x.Spec) {
			return m.T("done.extPending", appName(wh.app)), nil
		}
		return m.T("done.extActive", appName(wh.app)), nil
	}
	return "", membership.ErrInvalidLink
}

func accountOf(obj client.Object) account {
	kind := kindMember
	if _, ok := obj.(*rosterv1.ExternalUser); ok {
		kind = kindExternal
	}
	return account{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: string(obj.GetUID())}
}

func (s *Server) donePage(w http.ResponseWriter, r *http.Request) {
	var d done
	if !s.cookies.get(r, cookieDone, &d) {
		s.redirect(w, r, "/")
		return
	}
	m := s.msgs(r)
	v := view{messages: m, Org: d.Org, Title: m.T("done.title"), Intro: []string{d.Message}}
	if !d.NoAccount {
		v.Links = []link{{Href: "/signin", Label: m.T("done.signin"), ID: "next"}}
	}
	s.render(w, r, http.StatusOK, v)
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	m := s.msgs(r)
	s.render(w, r, http.StatusOK, view{messages: m, Title: m.T("home.title"), Intro: []string{m.T("home.intro")},
		Forms: []form{{ID: "join", Action: "/door", Submit: m.T("home.go"), Fields: []field{{Name: "door", Label: m.T("home.door"),
			Type: "text", Inputmode: "numeric", Autocomplete: "off", Hint: m.T("home.door.hint"), Required: true}}}},
		Links: []link{{Href: "/signin", Label: m.T("home.signin"), ID: "signin"}}})
}

// qr is the PNG of the organization's public link, for the join page of someone who holds
// that link (it comes from their flow cookie, never from the address).
func (s *Server) qr(w http.ResponseWriter, r *http.Request) {
	var f flow
	if !s.cookies.get(r, cookieFlow, &f) || f.Kind != kindJoin {
		http.NotFound(w, r)
		return
	}
	org, err := s.acceptor.OrganizationForPublicLink(r.Context(), f.Token)
	if err != nil || org.Status.PublicLinkSecretRef == nil {
		http.NotFound(w, r)
		return
	}
	sec := &corev1.Secret{}
	if err := s.cfg.Client.Get(r.Context(), client.ObjectKey{Namespace: org.Namespace, Name: org.Status.PublicLinkSecretRef.Name}, sec); err != nil ||
		!linktoken.Matches(string(sec.Data[linktoken.SecretKeyHash]), f.Token) {
		http.NotFound(w, r)
		return
	}
	png, err := qrcode.Encode(string(sec.Data[linktoken.SecretKeyLink]), qrcode.Medium, 360)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write(png)
}
