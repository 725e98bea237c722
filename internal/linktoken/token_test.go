package linktoken

import "testing"

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
