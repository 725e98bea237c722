package memlimit

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestFromCgroup(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1)) // put back whatever was set
	dir := t.TempDir()
	write := func(content string) string {
		p := filepath.Join(dir, "memory.max")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, content, env string
		want               int64
	}{
		{name: "a small limit keeps ReserveMin", content: "268435456\n", want: 268435456 - 48<<20},
		{name: "a large limit keeps a tenth", content: "1073741824\n", want: 1073741824 - 107374182},
		{name: "a limit below the reserve", content: "33554432\n", want: 0},
		{name: "no limit", content: "max\n", want: 0},
		{name: "GOMEMLIMIT wins", content: "268435456\n", env: "100MiB", want: 0},
		{name: "garbage", content: "lots\n", want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", tc.env)
			debug.SetMemoryLimit(math.MaxInt64)
			if got := FromCgroup(write(tc.content)); got != tc.want {
				t.Fatalf("FromCgroup = %d, want %d", got, tc.want)
			}
			wantRuntime := tc.want
			if wantRuntime == 0 {
				wantRuntime = math.MaxInt64
			}
			if got := debug.SetMemoryLimit(-1); got != wantRuntime {
				t.Fatalf("runtime limit = %d, want %d", got, wantRuntime)
			}
		})
	}
	if got := FromCgroup(filepath.Join(dir, "absent")); got != 0 {
		t.Fatalf("no cgroup file: FromCgroup = %d, want 0", got)
	}
}
