// Package linktoken makes the secret tokens that invitation links carry. A token is 256
// random bits; Roster stores only its SHA-256, so a leaked Secret or etcd backup cannot be
// turned back into a working link.
package linktoken

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// HashLabel is the label on a token Secret that lets the sign-up page find it by the hash
// of the token it was given. Label values hold 63 characters, so it carries the first 48
// hex digits (192 bits); Matches then checks the whole hash.
const HashLabel = "org.roster.dev/token-hash"

// Keys of the Secrets that hold a link: the token's hash, the link itself where an admin
// copies it from the Secret, and the generation (send or rotation) the token belongs to.
const (
	SecretKeyHash       = "hash"
	SecretKeyLink       = "link"
	SecretKeyGeneration = "generation"
	// SecretKeyPending holds a token while the message that carries it is being delivered,
	// so that a retry, or a resend after a crash, carries the same working link. It is
	// removed once the message is delivered.
	SecretKeyPending = "pending"
)

// Link is the address of a page under base that a token opens, such as
// https://join.example.com/invite/<token>.
func Link(base, page, token string) string {
	return strings.TrimRight(base, "/") + "/" + page + "/" + token
}

// New returns a fresh token and its hash.
func New() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("read random bytes: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, Hash(token), nil
}

// Hash is the SHA-256 of a token, in hex.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// LabelValue is the HashLabel value for a hash.
func LabelValue(hash string) string {
	if len(hash) > 48 {
		return hash[:48]
	}
	return hash
}

// Matches reports, in constant time, whether token hashes to hash.
func Matches(hash, token string) bool {
	return subtle.ConstantTimeCompare([]byte(hash), []byte(Hash(token))) == 1
}

// Valid reports whether s has the shape of a token, so that garbage is refused before any
// lookup.
func Valid(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}
