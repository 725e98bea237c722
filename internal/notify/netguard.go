package notify

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/roster-dev/roster/internal/netrange"
)

// Notification targets (SMTP hosts, SMS and webhook URLs) come from tenants' Secrets, and the
// manager that dials them runs inside the cluster. Left open, a tenant could point a channel
// at the cloud's metadata service, the API server or another tenant's pods, and use Roster
// to reach them. So by default a channel may connect only to public addresses; the manager's
// --notify-allow-cidr flag opens the ranges an operator trusts (a relay on the office
// network, loopback in development). The check runs on the address actually dialled, after
// DNS, so a name that resolves to an internal address is refused as well.

// deniedPrefixes are the ranges no channel reaches unless allowed: loopback, link-local
// (where clouds serve instance metadata), private and shared networks (where clusters put
// pods, services and nodes), and addresses that are no single host.
var deniedPrefixes = mustPrefixes(
	"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
	"100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
	"::/128", "::1/128", "fe80::/10", "fc00::/7", "ff00::/8", "64:ff9b::/96",
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// LoopbackOnly allows loopback addresses: for tests and the local demo, whose servers listen
// on 127.0.0.1.
var LoopbackOnly = mustPrefixes("127.0.0.0/8", "::1/128")

// addressGuard refuses connections to denied addresses outside its allow-list.
type addressGuard struct{ allow []netip.Prefix }

// check refuses ip when it is in a denied range and not allowed.
func (g addressGuard) check(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, p := range g.allow {
		if p.Contains(ip) {
			return nil
		}
	}
	for _, p := range deniedPrefixes {
		if p.Contains(ip) {
			return &DeniedAddressError{Addr: ip}
		}
	}
	return nil
}

// DeniedAddressError says a channel's target resolved to an address notifications may not
// reach. It is permanent: trying again reaches the same address.
type DeniedAddressError struct{ Addr netip.Addr }

func (e *DeniedAddressError) Error() string {
	return fmt.Sprintf("refusing to connect to %s: internal addresses are not notification targets unless the manager's --notify-allow-cidr allows them", e.Addr)
}

// control is a net.Dialer Control: it sees the resolved address of every connection.
func (g addressGuard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refusing to connect to %q: %w", address, err)
	}
	return g.check(ap.Addr())
}

// dialer dials through the guard.
func (g addressGuard) dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: g.control}
}

// loopbackHost reports whether host names this machine, the one place a plain http:// URL
// may point, since nothing on the way can read it.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// CheckAddress reports whether a channel may connect to ip, with allow opening internal
// ranges as the manager's --notify-allow-cidr does.
func CheckAddress(ip netip.Addr, allow []netip.Prefix) error {
	return addressGuard{allow: allow}.check(ip)
}

// AllowList is the --notify-allow-cidr flag of the binaries that send notifications: ranges
// channels may reach although they are internal, repeated or separated by commas.
type AllowList = netrange.List

// AllowListUsage is the flag's help text.
const AllowListUsage = "An address range notification channels may reach although it is internal " +
	"(loopback, link-local, private), such as a mail relay on the office network; repeat or separate with commas. None by default."
