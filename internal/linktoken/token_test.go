package linktoken

import (
	"strings"
	"testing"
)

func TestNewTokensAreUniqueAndMatchTheirHash(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, hash, err := New()
		if err != nil {
			t.Fatal(err)
		}
		if !Valid(tok) {
			t.Fatalf("token %q is not valid", tok)
		}
		if seen[tok] {
			t.Fatalf("token %q repeated", tok)
		}
		seen[tok] = true
		if !Matches(hash, tok) {
			t.Fatalf("hash does not match its token")
		}
		if Matches(hash, tok+"x") {
			t.Fatalf("hash matches another token")
		}
		if len(LabelValue(hash)) != 48 {
			t.Fatalf("label value has %d characters", len(LabelValue(hash)))
		}
	}
	if Valid("short") || Valid("") {
		t.Fatal("garbage counted as a token")
	}
}

// FuzzToken feeds the link checks what a stranger can put in a URL: nothing panics, only a
// token's own hash matches it, and what Valid refuses never matches a real token's hash.
func FuzzToken(f *testing.F) {
	tok, _, err := New()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{tok, "", "../../etc/passwd", "%00", strings.Repeat("A", 43), tok + "=", tok[:42]} {
		f.Add(s)
	}
	real := Hash(tok)
	f.Fuzz(func(t *testing.T, s string) {
		if !Matches(Hash(s), s) {
			t.Fatalf("a token does not match its own hash: %q", s)
		}
		if s != tok && Matches(real, s) {
			t.Fatalf("%q opens another token's link", s)
		}
		_ = Valid(s)
		if len(LabelValue(Hash(s))) > 63 {
			t.Fatal("label value too long")
		}
	})
}
