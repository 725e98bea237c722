// Package memlimit keeps the Go runtime's heap under the container's memory limit.
//
// By default the runtime lets the heap grow to twice what is live before it collects, and
// returns freed memory to the system slowly: the manager with 20,000 objects cached holds
// about 90 MiB live but over 300 MiB resident, and a container limit between the two gets it
// killed. With a memory limit (GOMEMLIMIT, or debug.SetMemoryLimit) the runtime collects
// harder as it nears the limit instead. Kubernetes does not tell a process its limit, so
// the limit is read from the cgroup the process runs in.
package memlimit

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// CgroupFile is where cgroup v2 puts the memory limit of the process's own cgroup, as the
// container sees it.
const CgroupFile = "/sys/fs/cgroup/memory.max"

// The reserve is what of the cgroup's limit is kept from the Go runtime, for what the
// runtime does not count: mostly the binary's own pages (the manager's text and data are
// 55 MB, of which `make bench` finds 46 MiB resident), then C libraries and the kernel's
// buffers. It is the larger of ReserveShare of the limit and ReserveMin.
const (
	ReserveShare = 0.1
	ReserveMin   = 48 << 20
)

// For is the Go runtime's memory limit in a cgroup limited to limit bytes.
func For(limit int64) int64 {
	return limit - max(int64(float64(limit)*ReserveShare), ReserveMin)
}

// FromCgroup sets the runtime's memory limit to For the limit in file, unless
// GOMEMLIMIT is set (the operator's choice wins) or there is no limit. It returns the limit
// set, or 0.
func FromCgroup(file string) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	limit, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil || limit <= 0 { // "max": no limit
		return 0
	}
	set := For(limit)
	if set <= 0 {
		return 0 // a limit smaller than the reserve: leave the runtime's default
	}
	debug.SetMemoryLimit(set)
	return set
}
