package portal

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
)

// Argon2id parameters: the OWASP floor (19 MiB, two passes, one lane). Raising them costs
// every sign-in that much more memory and time; stored hashes carry their own parameters,
// so old ones keep verifying after a change.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

// Password length bounds: long enough to resist guessing behind the rate limits, short
// enough that hashing one cannot be used to exhaust the server.
const (
	minPasswordLen = 10
	maxPasswordLen = 128
)

// hashPassword returns the argon2id hash of a password in the PHC string format.
func hashPassword(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// verifyPassword reports, in constant time, whether pw matches an argon2id PHC string.
func verifyPassword(encoded, pw string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var mem, iter uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iter, &threads); err != nil ||
		mem < argonMemoryKiB || iter < 1 || threads < 1 || mem > 1<<20 || iter > 16 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, iter, mem, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is verified against when no account matches, so that a sign-in takes as long
// for an unknown address as for a known one with a wrong password.
var dummyHash, _ = hashPassword("not a password anyone has")

// Labels and keys of the credential Secrets, which live in the portal's own namespace:
// organizations' admins, who may read Secrets in their namespaces, never see password
// hashes, and the portal writes Secrets nowhere else.
const (
	labelCredential    = "org.roster.dev/credential"
	labelLoginEmail    = "org.roster.dev/login-email"
	labelLoginUsername = "org.roster.dev/login-username"
	keyPassword        = "password"
	keyKind            = "kind"
	keyNamespace       = "namespace"
	keyName            = "name"
	keyUID             = "uid"
)

// Account kinds a credential belongs to.
const (
	kindMember   = "member"
	kindExternal = "external-user"
)

// account is who a credential signs in: one Member or ExternalUser, by UID, so that a
// later object of the same name does not inherit the password.
type account struct {
	Kind      string `json:"k"`
	Namespace string `json:"n"`
	Name      string `json:"m"`
	UID       string `json:"u"`
}

// loginLabel is the label value a login (email or username) is found by: a hash, so the
// labels reveal no addresses.
func loginLabel(login string) string {
	return linktoken.LabelValue(linktoken.Hash(strings.ToLower(strings.TrimSpace(login))))
}

// credentials keeps passwords in Secrets of the portal's namespace.
type credentials struct {
	client    client.Client
	reader    client.Reader
	namespace string
}

func credentialName(a account) string {
	return "portal-credential-" + linktoken.Hash(a.Kind + "/" + a.Namespace + "/" + a.Name)[:40]
}

// store saves an account's password hash and the logins it is found by, replacing any
// before.
func (c credentials) store(ctx context.Context, a account, email, username, hash string) error {
	sec := &corev1.Secret{}
	err := c.reader.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: credentialName(a)}, sec)
	if client.IgnoreNotFound(err) != nil {
		return err
	}
	exists := err == nil
	sec.Name, sec.Namespace, sec.Type = credentialName(a), c.namespace, corev1.SecretTypeOpaque
	sec.Labels = map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster, labelCredential: a.Kind}
	if email != "" {
		sec.Labels[labelLoginEmail] = loginLabel(email)
	}
	if username != "" {
		sec.Labels[labelLoginUsername] = loginLabel(username)
	}
	if hash == "" {
		hash = string(sec.Data[keyPassword])
	}
	sec.Data = map[string][]byte{keyPassword: []byte(hash), keyKind: []byte(a.Kind), keyNamespace: []byte(a.Namespace),
		keyName: []byte(a.Name), keyUID: []byte(a.UID)}
	if exists {
		return c.client.Update(ctx, sec)
	}
	return c.client.Create(ctx, sec)
}

// relabel follows a changed email, keeping the password.
func (c credentials) relabel(ctx context.Context, a account, email, username string) error {
	err := c.store(ctx, a, email, username, "")
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// find returns the accounts whose login is login and whose password is pw. It always
// verifies at least once, so that the answer takes as long whether the login exists or not.
func (c credentials) find(ctx context.Context, login, pw string) ([]account, error) {
	var found []corev1.Secret
	for _, label := range []string{labelLoginEmail, labelLoginUsername} {
		list := &corev1.SecretList{}
		if err := c.reader.List(ctx, list, client.InNamespace(c.namespace), client.MatchingLabels{label: loginLabel(login)}); err != nil {
			return nil, err
		}
		for _, s := range list.Items {
			if len(found) < 4 && !containsSecret(found, s.Name) {
				found = append(found, s)
			}
		}
	}
	if len(found) == 0 {
		verifyPassword(dummyHash, pw)
		return nil, nil
	}
	var out []account
	for _, s := range found {
		if verifyPassword(string(s.Data[keyPassword]), pw) {
			out = append(out, account{Kind: string(s.Data[keyKind]), Namespace: string(s.Data[keyNamespace]),
				Name: string(s.Data[keyName]), UID: string(s.Data[keyUID])})
		}
	}
	return out, nil
}

func containsSecret(list []corev1.Secret, name string) bool {
	for _, s := range list {
		if s.Name == name {
			return true
		}
	}
	return false
}

// errNoAccount is a credential whose object is gone or was replaced.
var errNoAccount = errors.New("the account no longer exists")

// objectOf reads the account's object and checks it is the one the credential was made for.
func objectOf(ctx context.Context, r client.Reader, a account) (client.Object, error) {
	var obj client.Object = &rosterv1.Member{}
	if a.Kind == kindExternal {
		obj = &rosterv1.ExternalUser{}
	}
	if err := r.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: a.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errNoAccount
		}
		return nil, err
	}
	if string(obj.GetUID()) != a.UID || !obj.GetDeletionTimestamp().IsZero() {
		return nil, errNoAccount
	}
	return obj, nil
}
