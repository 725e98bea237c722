package netrange

import (
	"net/netip"
	"testing"
)

func TestList(t *testing.T) {
	var l List
	if err := l.Set("10.1.2.3/8, 192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	if err := l.Set("fd00::/8"); err != nil {
		t.Fatal(err)
	}
	if got := l.String(); got != "10.0.0.0/8,192.0.2.7/32,fd00::/8" {
		t.Fatalf("String() = %q", got)
	}
	for addr, want := range map[string]bool{"10.200.0.1": true, "192.0.2.7": true, "192.0.2.8": false, "::ffff:10.0.0.1": true,
		"fd12::1": true, "2001:db8::1": false} {
		if got := l.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	if err := l.Set("not-a-range"); err == nil {
		t.Fatal("a bad range was taken")
	}
}
