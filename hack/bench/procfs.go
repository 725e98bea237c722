package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/roster-dev/roster/internal/testenv/rig"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times; 100 on every Linux
// architecture Go runs on.
const clockTicks = 100

// cpuSeconds is the CPU time pid has used, user and system.
func cpuSeconds(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces; the fields after it are fixed.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / clockTicks, nil
}

// memory is a process's resident set now and at its peak, in MiB.
type memory struct {
	RSS, PeakRSS float64
	// File is the part of RSS that is file pages, mostly the binary's own: the Go runtime's
	// memory limit does not count them, a container's does.
	File float64
}

func memoryOf(pid int) (memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = kb / 1024
		case "VmHWM:":
			m.PeakRSS = kb / 1024
		case "RssFile:":
			m.File = kb / 1024
		}
	}
	return m, nil
}

// idleWindow is how long processes must stay (nearly) idle to count as done.
const idleWindow = 3 * time.Second

// waitIdle waits until the processes together use less than a tenth of a core for three
// seconds in a row: the managers have worked through their queues. It returns how long that
// took, and an error when they were still busy after within.
func waitIdle(procs []*rig.Process, within time.Duration) (time.Duration, error) {
	const window, threshold = idleWindow, 0.1
	start := time.Now()
	total := func() (float64, error) {
		sum := 0.0
		for _, p := range procs {
			if p.Exited() {
				return 0, fmt.Errorf("%s exited:\n%s", p.Name, p.LogTail(20))
			}
			s, err := cpuSeconds(p.Pid())
			if err != nil {
				return 0, err
			}
			sum += s
		}
		return sum, nil
	}
	prev, err := total()
	if err != nil {
		return 0, err
	}
	for {
		time.Sleep(window)
		now, err := total()
		if err != nil {
			return time.Since(start), err
		}
		cores := (now - prev) / window.Seconds()
		if cores < threshold {
			return time.Since(start) - window, nil
		}
		prev = now
		if time.Since(start) > within {
			return time.Since(start), fmt.Errorf("still busy after %s (%.2f cores)", within, cores)
		}
	}
}

// findPid returns the process whose command line contains every one of parts, or 0.
func findPid(parts ...string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(data), "\x00", " ")
		all := true
		for _, p := range parts {
			all = all && strings.Contains(cmd, p)
		}
		if all {
			return pid
		}
	}
	return 0
}

// cpu is the CPU time used so far, in seconds, by procs together (named name: the managers,
// the portal), the API server, etcd and the benchmark itself (its clients and the mail sink).
func (b *bench) cpu(p *plane, name string, procs []*rig.Process) tally {
	out := tally{}
	for _, proc := range procs {
		if s, err := cpuSeconds(proc.Pid()); err == nil {
			out[name] += s
		}
	}
	if p.apiserverPid == 0 {
		p.apiserverPid = findPid("kube-apiserver", "--cert-dir="+filepath.Join(p.rig.Dir, "apiserver"))
	}
	if p.etcdPid == 0 && p.rig.Env.ControlPlane.Etcd != nil && p.rig.Env.ControlPlane.Etcd.URL != nil {
		p.etcdPid = findPid("etcd", "--listen-client-urls="+p.rig.Env.ControlPlane.Etcd.URL.String())
	}
	for name, pid := range map[string]int{"kube-apiserver": p.apiserverPid, "etcd": p.etcdPid, "bench": os.Getpid()} {
		if pid == 0 {
			continue
		}
		if s, err := cpuSeconds(pid); err == nil {
			out[name] = s
		}
	}
	return out
}

// runLogged runs a command with env added, its output to the file out.
func runLogged(ctx context.Context, out string, env []string, bin string, args ...string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	return cmd.Run()
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
