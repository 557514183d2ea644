package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func readUsage(t *testing.T, path string) usage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var u usage
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestPassesOnExitCode(t *testing.T) {
	result := filepath.Join(t.TempDir(), "usage.json")
	code, err := run(context.Background(), []string{"-result", result, "--", "/bin/sh", "-c", "exit 3"})
	if err != nil || code != 3 {
		t.Fatalf("run: code %d, error %v; want 3", code, err)
	}
	if u := readUsage(t, result); u.Wall <= 0 || u.MaxRSS <= 0 || u.LauncherHWM <= 0 {
		t.Errorf("usage %+v: want wall time, peak RSS and the launcher's own", u)
	}
}

func TestReportsSignals(t *testing.T) {
	result := filepath.Join(t.TempDir(), "usage.json")
	code, err := run(context.Background(), []string{"-result", result, "--", "/bin/sh", "-c", "kill -TERM $$"})
	if err != nil || code != 128+15 {
		t.Fatalf("run: code %d, error %v; want 143", code, err)
	}
}

// helperEnv makes the test binary, run as a child, hold memory instead of
// running tests.
const helperEnv = "LAUNCHER_TEST_HOLD_BYTES"

func TestMain(m *testing.M) {
	if v := os.Getenv(helperEnv); v != "" {
		n, _ := strconv.Atoi(v)
		b := make([]byte, n)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1 // touch every page, so it is resident
		}
		os.Exit(int(b[0]) - 1)
	}
	os.Exit(m.Run())
}

// A program that holds 64 MB shows a peak of at least that.
func TestMeasuresPeakRSS(t *testing.T) {
	const size = 64 << 20
	t.Setenv(helperEnv, strconv.Itoa(size))
	result := filepath.Join(t.TempDir(), "usage.json")
	code, err := run(context.Background(), []string{"-result", result, "--", os.Args[0]})
	if err != nil || code != 0 {
		t.Fatalf("run: code %d, error %v", code, err)
	}
	if u := readUsage(t, result); u.MaxRSS < size {
		t.Errorf("peak RSS %d bytes; the program held %d", u.MaxRSS, size)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"-result", "x"}, {"--", "/bin/true"}} {
		if code, err := run(context.Background(), args); code != 2 || err == nil {
			t.Errorf("run(%q): code %d, error %v; want 2 and an error", args, code, err)
		}
	}
}
