// Package netrange holds lists of address ranges given on the command line: the ranges
// notification channels may reach although they are internal, and the proxies the portal
// believes about a client's address.
package netrange

import (
	"net/netip"
	"strings"
)

// List is a flag.Value of address ranges, repeated or separated by commas.
type List []netip.Prefix

// String implements flag.Value.
func (l *List) String() string {
	parts := make([]string, len(*l))
	for i, p := range *l {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value. A bare address is a range of one.
func (l *List) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if a, err := netip.ParseAddr(part); err == nil {
			*l = append(*l, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return err
		}
		*l = append(*l, p.Masked())
	}
	return nil
}

// Contains reports whether a is in one of the ranges.
func (l List) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range l {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
