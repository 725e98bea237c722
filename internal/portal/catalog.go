package portal

import (
	"fmt"
	"net/http"
	"strings"
)

// catalog holds every text the pages show, by key, so that the portal can be translated by
// adding a language here; English is the default and the fallback for a missing key. Texts
// take fmt arguments.
var catalog = map[string]map[string]string{
	"en": {
		"app.name":                 "Roster",
		"skip":                     "Skip to content",
		"home.title":               "Join an organization",
		"home.intro":               "Were you given a door number? Type it here to ask to join. An admin of the organization will look at your request.",
		"home.door":                "Door number",
		"home.door.hint":           "6 to 10 digits",
		"home.go":                  "Continue",
		"home.signin":              "Already have an account? Sign in",
		"signup.title.invite":      "You are invited to %s",
		"signup.title.join":        "Ask to join %s",
		"signup.title.ext":         "Register for %s",
		"signup.title.module":      "Ask to join %s",
		"signup.module":            "%s works on %s with people from outside the organization. Ask to join, and an admin will look at your request.",
		"module.Task":              "Task",
		"module.Project":           "Project",
		"module.File":              "File",
		"module.Group":             "Group",
		"signup.invitedBy":         "%s invited you.",
		"signup.approval":          "An admin of the organization approves every request to join.",
		"signup.qr":                "Share this organization: scan the code to open its public link.",
		"signup.intro":             "Tell us who you are. We will send a code to your email address (or, without one, to your phone) to make sure it is yours.",
		"signup.next":              "Send me a code",
		"field.username":           "Username",
		"field.username.hint":      "Lowercase letters, digits and - . @ _",
		"field.displayName":        "Your name",
		"field.email":              "Email address",
		"field.phone":              "Phone number",
		"field.phone.hint":         "International form, for example +4915112345678",
		"field.department":         "Department",
		"field.position":           "Position",
		"field.workNumber":         "Work phone number",
		"field.location":           "Location",
		"field.required":           "required",
		"field.code":               "Verification code",
		"field.code.hint":          "6 digits",
		"field.password":           "Password",
		"field.password.hint":      "At least 10 characters",
		"field.password2":          "Password again",
		"field.login":              "Email address or username",
		"verify.title":             "Check your messages",
		"verify.intro":             "We sent a 6-digit code to %s. It works for 10 minutes.",
		"verify.go":                "Confirm",
		"verify.resend":            "Send a new code",
		"verify.wrong":             "That code is not right. You have %d more tries.",
		"verify.resent":            "We sent a new code. Only the newest code works.",
		"password.title":           "Choose a password",
		"password.intro":           "You will sign in with your email address or username and this password.",
		"password.go":              "Finish",
		"password.short":           "The password must have 10 to 128 characters.",
		"password.mismatch":        "The two passwords are not the same.",
		"done.title":               "Done",
		"done.pending":             "You asked to join %s. An admin will look at your request; we will let you know.",
		"done.active":              "Welcome to %s! Your account is ready.",
		"done.extPending":          "You are registered for %s. An admin will approve your registration; we will let you know.",
		"done.extActive":           "You are registered for %s. You can sign in now.",
		"done.signin":              "Sign in",
		"done.module":              "Your request to join %s was sent. An admin of %s will look at it; once they let you in, we will tell you.",
		"signin.title":             "Sign in",
		"signin.go":                "Sign in",
		"signin.wrong":             "The email address, username or password is not right.",
		"signin.register":          "New here? Register",
		"signout.go":               "Sign out",
		"signout.title":            "Signed out",
		"signout.text":             "You are signed out. Close the browser if others use this device.",
		"profile.title":            "Your details",
		"profile.intro":            "Only you can change your name, email address and phone number. A new address or number is saved once you confirm it with the code we send there.",
		"profile.save":             "Save",
		"profile.saved":            "Saved.",
		"profile.pending":          "Your membership waits for an admin's approval.",
		"error.required":           "Please fill in: %s.",
		"error.contact":            "Please give an email address or a phone number.",
		"error.emailNeeded":        "Please give your email address.",
		"error.username":           "Please choose a username of lowercase letters, digits and - . @ _.",
		"error.usernameTaken":      "This username is already taken in the organization; choose another.",
		"error.email":              "Please check the email address.",
		"error.phone":              "Please give the phone number in international form, for example +4915112345678.",
		"error.tooSoon":            "We sent a code less than 30 seconds ago. Please wait a moment before asking for a new one.",
		"error.noChannel":          "We cannot send a code there: the organization has no way to reach that address. Use your email address, or ask the organization for help.",
		"error.sendFailed":         "We could not send the code just now. Please try again in a minute.",
		"refused.link.title":       "This link does not work",
		"refused.link.text":        "This link is not valid any more: it was already used, replaced by a newer one, or cancelled. Ask the person who invited you to send a new one.",
		"refused.expired.title":    "This link has expired",
		"refused.expired.text":     "Links work for a limited time. Ask the person who invited you to send it again.",
		"refused.door.title":       "No organization found",
		"refused.door.text":        "No organization has this door number, or it does not take requests to join at the moment. Check the number with the person who gave it to you.",
		"refused.closed.title":     "Registration is closed",
		"refused.closed.text":      "This organization or application does not accept new people at the moment. Ask its admins for an invitation.",
		"refused.flow.title":       "Please start again",
		"refused.flow.text":        "Your sign-up took too long or was finished in another window. Open your link again to start over.",
		"refused.code.title":       "The code does not work any more",
		"refused.code.text":        "The code was typed wrong five times, or its 10 minutes are over. Ask for a new code and type the newest one.",
		"refused.csrf.title":       "The form has expired",
		"refused.csrf.text":        "For your safety we could not accept this form. Go back, reload the page and send it again.",
		"refused.rate.title":       "Too many attempts",
		"refused.rate.text":        "There were too many attempts from here. Wait a minute and try again.",
		"refused.locked.title":     "Your access is locked",
		"refused.locked.text":      "An admin has locked your access to %s. If you think this is a mistake, contact the organization.",
		"refused.seat.title":       "No seat is free",
		"refused.seat.text":        "All licensed seats of %s are taken. You can sign in as soon as the organization frees or adds a seat; nothing else is needed from you.",
		"refused.pending.title":    "Waiting for approval",
		"refused.pending.text":     "Your registration for %s waits for an admin's approval. We will let you know.",
		"refused.noaccess.title":   "No access",
		"refused.noaccess.text":    "This account cannot sign in. Contact the organization if you think this is a mistake.",
		"refused.registered.title": "You already have an account",
		"refused.registered.text":  "This email address already has an account here. Sign in instead.",
		"refused.error.title":      "Something went wrong",
		"refused.error.text":       "We could not finish this just now. Please try again in a minute.",
		"refused.notfound.title":   "Page not found",
		"refused.notfound.text":    "There is no page at this address.",
		"next.home":                "Go to the start page",
		"next.signin":              "Go to sign in",
		"next.back":                "Go back",
		"next.newcode":             "Send me a new code",
	},
}

// messages is one language's catalog with English under it.
type messages struct{ lang string }

// pickLanguage takes the first language of Accept-Language the catalog has.
func pickLanguage(r *http.Request) messages {
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
		tag = strings.SplitN(tag, "-", 2)[0]
		if _, ok := catalog[tag]; ok {
			return messages{lang: tag}
		}
	}
	return messages{lang: "en"}
}

// T is the text for key in the page's language.
func (m messages) T(key string, args ...any) string {
	s, ok := catalog[m.lang][key]
	if !ok {
		s, ok = catalog["en"][key]
	}
	if !ok {
		return key
	}
	if len(args) == 0 {
		return s
	}
	return fmt.Sprintf(s, args...)
}
