/*
Copyright 2026 The Roster Authors.

Licensed under the Apache License, Version 2.0.
*/

package notify

import (
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	texttemplate "text/template"
	"text/template/parse"
	"time"
)

// TemplateName identifies one kind of message. Each has a subject, a
// plain-text body, an HTML body, an SMS text and a webhook text.
type TemplateName string

// The messages Roster sends.
const (
	// TemplateInvitationEmail invites someone to an organization by email.
	TemplateInvitationEmail TemplateName = "invitation-email"
	// TemplateInvitationSMS invites someone by SMS; its texts are shorter.
	TemplateInvitationSMS TemplateName = "invitation-sms"
	// TemplateInvitationResend repeats an invitation with a fresh link.
	TemplateInvitationResend TemplateName = "invitation-resend"
	// TemplateApprovalNeeded asks an organization admin to review a member.
	TemplateApprovalNeeded TemplateName = "approval-needed"
	// TemplateMemberApproved tells a member they were approved.
	TemplateMemberApproved TemplateName = "member-approved"
	// TemplateMemberRejected tells an applicant they were rejected.
	TemplateMemberRejected TemplateName = "member-rejected"
	// TemplateMemberRemoved tells a member they were removed.
	TemplateMemberRemoved TemplateName = "member-removed"
	// TemplateMemberRestored tells a removed member they are back.
	TemplateMemberRestored TemplateName = "member-restored"
	// TemplateExternalInvitation sends an external user their individual link.
	TemplateExternalInvitation TemplateName = "external-invitation"
	// TemplateRegistrationConfirmation asks a new user to confirm their address.
	TemplateRegistrationConfirmation TemplateName = "registration-confirmation"
	// TemplateWelcome greets a new member with the portal link.
	TemplateWelcome TemplateName = "welcome"
	// TemplateCollaboratorAdded tells someone they now collaborate on a module.
	TemplateCollaboratorAdded TemplateName = "collaborator-added"
	// TemplateCollaboratorRemoved tells someone they no longer collaborate on a module.
	TemplateCollaboratorRemoved TemplateName = "collaborator-removed"
	// TemplateVerificationCode sends a one-time code.
	TemplateVerificationCode TemplateName = "verification-code"
	// TemplateExternalDisabled tells an external user they were disabled for inactivity.
	TemplateExternalDisabled TemplateName = "external-disabled"
)

var templateNames = []TemplateName{
	TemplateInvitationEmail, TemplateInvitationSMS, TemplateInvitationResend,
	TemplateApprovalNeeded, TemplateMemberApproved, TemplateMemberRejected,
	TemplateMemberRemoved, TemplateMemberRestored, TemplateExternalInvitation,
	TemplateRegistrationConfirmation, TemplateWelcome, TemplateCollaboratorAdded,
	TemplateCollaboratorRemoved, TemplateVerificationCode, TemplateExternalDisabled,
}

// TemplateNames lists every message Roster can send, for validation and
// documentation.
func TemplateNames() []TemplateName { return slices.Clone(templateNames) }

// Valid reports whether n is a known message.
func (n TemplateName) Valid() bool { return slices.Contains(templateNames, n) }

// Part is one rendering of a message, stored in its own template file.
type Part string

// The parts of every message. SMS and webhook texts have their own files
// because their audiences differ: the SMS goes to the recipient and may
// carry the link, the webhook goes to an admin channel and must not.
const (
	// PartSubject is the email subject; line breaks are collapsed.
	PartSubject Part = "subject"
	// PartText is the plain-text email body (text/template).
	PartText Part = "txt"
	// PartHTML is the HTML email body (html/template, escaped).
	PartHTML Part = "html"
	// PartSMS is the text message sent to the recipient's phone.
	PartSMS Part = "sms"
	// PartWebhook is the admin-channel text; it must not carry secrets.
	PartWebhook Part = "webhook"
)

var parts = []Part{PartSubject, PartText, PartHTML, PartSMS, PartWebhook}

// LayoutFile is the shared HTML frame every HTML body is rendered into via
// {{template "layout" .}}; the body defines "content". Organizations can
// override it like any other file to brand all their mails at once.
const LayoutFile = "layout.html.tmpl"

// TemplateFile returns the file name of one part of a message, which is
// also its key in Settings.Templates, e.g. "welcome.html.tmpl".
func TemplateFile(name TemplateName, part Part) string {
	return string(name) + "." + string(part) + ".tmpl"
}

//go:embed templates/*
var embedded embed.FS

// defaultTemplate returns the embedded source of file.
func defaultTemplate(file string) (string, bool) {
	b, err := fs.ReadFile(embedded, "templates/"+file)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// Rendered is a message rendered for every channel.
type Rendered struct {
	// Subject is a single line.
	Subject string
	// Text is the plain-text email body.
	Text string
	// HTML is the HTML email body; data is HTML-escaped.
	HTML string
	// SMS is the text message body.
	SMS string
	// Webhook is the admin-channel text, with links and codes removed.
	Webhook string
}

// chatEscaper escapes the three characters Slack-compatible webhooks give meaning to.
var chatEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// escapedForChat is msg with every string a person could have typed escaped for chat.
func escapedForChat(msg Message) Message {
	out := msg
	out.To = Recipient{Name: chatEscaper.Replace(msg.To.Name), Email: chatEscaper.Replace(msg.To.Email), Phone: chatEscaper.Replace(msg.To.Phone)}
	out.Data = make(map[string]any, len(msg.Data))
	for k, v := range msg.Data {
		// Links and codes stay as they are, so the redaction that follows finds them.
		if str, ok := v.(string); ok && !slices.Contains(secretDataKeys, k) {
			v = chatEscaper.Replace(str)
		}
		out.Data[k] = v
	}
	return out
}

// secretDataKeys name the Message.Data entries that grant access. Their
// values are removed from webhook text, logs and errors.
var secretDataKeys = []string{"Link", "Code", "Token"}

// Render renders every part of msg with the organization's overrides.
// Errors are permanent and name the template file, never its content or
// the data.
func Render(s Settings, msg Message) (Rendered, error) {
	return render(s, msg, parts...)
}

// render renders only the requested parts, so a broken SMS override cannot
// stop email delivery.
func render(s Settings, msg Message, want ...Part) (Rendered, error) {
	var r Rendered
	if !msg.Template.Valid() {
		return r, permanentf("", nil, "unknown template %q", msg.Template)
	}
	secrets := newRedactor(secretValues(msg)...)
	for _, p := range want {
		m := msg
		if p == PartWebhook {
			// Chat services read <!channel>, <@U123> and <url|text> in a message as
			// mentions and links; what people typed is shown as text, never obeyed.
			m = escapedForChat(msg)
		}
		out, err := renderPart(s.Templates, m, p)
		if err != nil {
			return Rendered{}, secrets.scrub("", err)
		}
		switch p {
		case PartSubject:
			r.Subject = strings.Join(strings.Fields(out), " ")
		case PartText:
			r.Text = strings.TrimSpace(out) + "\n"
		case PartHTML:
			r.HTML = strings.TrimSpace(out) + "\n"
		case PartSMS:
			r.SMS = strings.TrimSpace(out)
		case PartWebhook:
			// The default webhook templates never mention links or codes;
			// an override might, and the admin channel must not see them.
			r.Webhook = secrets.apply(strings.TrimSpace(out))
		}
	}
	return r, nil
}

func renderPart(overrides map[string]string, msg Message, p Part) (string, error) {
	file := TemplateFile(msg.Template, p)
	src, err := source(overrides, file)
	if err != nil {
		return "", err
	}
	var buf cappedBuffer
	if p != PartHTML {
		t, err := texttemplate.New(file).Option("missingkey=zero").Funcs(textFuncs).Parse(src)
		if err != nil {
			return "", templateError(file, err)
		}
		trees := treesOf(t.Templates(), func(t *texttemplate.Template) *parse.Tree { return t.Tree })
		if err := checkBounded(trees); err != nil {
			return "", templateError(file, err)
		}
		if err := t.Execute(&buf, templateDataTrees(msg, trees)); err != nil {
			return "", templateError(file, err)
		}
		return buf.String(), nil
	}
	layout, err := source(overrides, LayoutFile)
	if err != nil {
		return "", err
	}
	t, err := htmltemplate.New(file).Option("missingkey=zero").Funcs(htmlFuncs).Parse(src)
	if err != nil {
		return "", templateError(file, err)
	}
	if _, err := t.New(LayoutFile).Parse(layout); err != nil {
		return "", templateError(LayoutFile, err)
	}
	trees := treesOf(t.Templates(), func(t *htmltemplate.Template) *parse.Tree { return t.Tree })
	if err := checkBounded(trees); err != nil {
		return "", templateError(file, err)
	}
	if err := t.Execute(&buf, templateDataTrees(msg, trees)); err != nil {
		return "", templateError(file, err)
	}
	return buf.String(), nil
}

func source(overrides map[string]string, file string) (string, error) {
	if src, ok := overrides[file]; ok {
		return src, nil
	}
	src, ok := defaultTemplate(file)
	if !ok {
		return "", permanentf("", nil, "template %q not found", file)
	}
	return src, nil
}

func templateError(file string, err error) error {
	// Parser and executor messages carry the file, the line and a short
	// reason; html/template's escaper additionally quotes a stretch of the
	// template source, which is cut off here so status stays readable.
	var detail string
	var herr *htmltemplate.Error
	if errors.As(err, &herr) {
		detail, _, _ = strings.Cut(herr.Description, ": ")
		if herr.Line > 0 {
			detail = fmt.Sprintf("line %d: %s", herr.Line, detail)
		}
	} else {
		detail = strings.TrimPrefix(err.Error(), "template: ")
	}
	return permanentf("", err, "template %q is invalid: %s", file, shorten(detail))
}

// ValidateTemplates checks an organization's overrides without sending
// anything, so a broken ConfigMap can be reported in status before the
// first notification fails. Unknown file names are errors: they are almost
// always typos that would otherwise be ignored silently.
func ValidateTemplates(overrides map[string]string) error {
	var errs []string
	for file, src := range overrides {
		if !knownFile(file) {
			errs = append(errs, fmt.Sprintf("unknown template file %q", file))
			continue
		}
		var trees []*parse.Tree
		var err error
		if strings.HasSuffix(file, ".html.tmpl") {
			var t *htmltemplate.Template
			if t, err = htmltemplate.New(file).Funcs(htmlFuncs).Parse(src); err == nil {
				trees = treesOf(t.Templates(), func(t *htmltemplate.Template) *parse.Tree { return t.Tree })
			}
		} else {
			var t *texttemplate.Template
			if t, err = texttemplate.New(file).Funcs(textFuncs).Parse(src); err == nil {
				trees = treesOf(t.Templates(), func(t *texttemplate.Template) *parse.Tree { return t.Tree })
			}
		}
		if err == nil {
			err = checkBounded(trees)
		}
		if err != nil {
			errs = append(errs, templateError(file, err).Error())
		}
	}
	if len(errs) == 0 {
		return nil
	}
	slices.Sort(errs)
	return permanentf("", nil, "%s", strings.Join(errs, "; "))
}

func knownFile(file string) bool {
	if file == LayoutFile {
		return true
	}
	for _, n := range templateNames {
		for _, p := range parts {
			if file == TemplateFile(n, p) {
				return true
			}
		}
	}
	return false
}

// templateDataTrees copies msg.Data, adds Recipient, and sets every field
// the templates refer to but Data lacks to "". text/template prints a
// missing map entry as "<no value>" even with missingkey=zero, because the
// zero value of any is nil; pre-filling is the only way to make missing
// data render as empty text.
func templateDataTrees(msg Message, trees []*parse.Tree) map[string]any {
	data := make(map[string]any, len(msg.Data)+8)
	for k, v := range msg.Data {
		if v == nil {
			v = ""
		}
		data[k] = v
	}
	if _, ok := data["Recipient"]; !ok {
		data["Recipient"] = msg.To
	}
	fields := map[string]struct{}{}
	for _, t := range trees {
		if t != nil {
			collectFields(t.Root, fields)
		}
	}
	for f := range fields {
		if _, ok := data[f]; !ok {
			data[f] = ""
		}
	}
	return data
}

// collectFields records the first identifier of every field reference
// (.Foo.Bar and $.Foo.Bar both yield "Foo"). Fields inside range and with
// blocks are relative to another value; filling them at the top level too
// is harmless.
func collectFields(n parse.Node, into map[string]struct{}) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			collectFields(c, into)
		}
	case *parse.ActionNode:
		collectFields(n.Pipe, into)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			collectFields(c, into)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			collectFields(a, into)
		}
	case *parse.ChainNode:
		collectFields(n.Node, into)
	case *parse.FieldNode:
		into[n.Ident[0]] = struct{}{}
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			into[n.Ident[1]] = struct{}{}
		}
	case *parse.IfNode:
		collectBranch(&n.BranchNode, into)
	case *parse.RangeNode:
		collectBranch(&n.BranchNode, into)
	case *parse.WithNode:
		collectBranch(&n.BranchNode, into)
	case *parse.TemplateNode:
		collectFields(n.Pipe, into)
	}
}

func collectBranch(b *parse.BranchNode, into map[string]struct{}) {
	collectFields(b.Pipe, into)
	collectFields(b.List, into)
	collectFields(b.ElseList, into)
}

func secretValues(msg Message) []string {
	var out []string
	for _, k := range secretDataKeys {
		if v, ok := msg.Data[k]; ok && v != nil {
			out = append(out, fmt.Sprint(v))
		}
	}
	return out
}

// datetime formats time.Time, *time.Time and metav1.Time (anything with a
// UTC method) for people; strings pass through so callers may preformat.
func datetime(v any) string {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return ""
	}
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case interface{ UTC() time.Time }:
		u := t.UTC()
		if u.IsZero() {
			return ""
		}
		return u.Format("Mon, 02 Jan 2006 15:04 MST")
	default:
		return fmt.Sprint(v)
	}
}

var (
	textFuncs = texttemplate.FuncMap{"datetime": datetime}
	htmlFuncs = htmltemplate.FuncMap{"datetime": datetime}
)
