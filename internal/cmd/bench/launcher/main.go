// Command launcher runs one program for the benchmark and measures it:
//
//	launcher -result FILE -- PROGRAM [ARGS...]
//
// It passes on the program's output and exit code, and writes its wall time,
// peak RSS and CPU time to FILE as JSON.
//
// It exists because the peak RSS the kernel reports for a child (ru_maxrss)
// is never below the high-water mark of the process that started it: exec
// keeps the larger of the old and the new address space's peaks, and Go
// starts programs with vfork, whose old address space is the parent's own.
// Started straight from the benchmark, which has generated hundreds of
// megabytes of mail, even /bin/true "peaks" at that size. This program
// imports nothing but the standard library and peaks at a couple of
// megabytes, which it reports as the floor under every figure it measures.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// usage is what the launcher writes to its result file; the benchmark reads
// it with the same field names.
type usage struct {
	Wall        time.Duration `json:"wall_ns"`
	MaxRSS      int64         `json:"max_rss_bytes"`
	CPU         time.Duration `json:"cpu_ns"`             // user + system
	User        time.Duration `json:"user_ns"`            // of which in user space
	LauncherHWM int64         `json:"launcher_hwm_bytes"` // the floor under MaxRSS
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "launcher:", err)
	}
	os.Exit(code)
}

// run returns the program's exit code, or an error (and 2 for bad usage, 1
// otherwise) when it could not run or measure it.
func run(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("launcher", flag.ContinueOnError)
	result := fs.String("result", "", "`file` to write the measurements to")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if *result == "" || fs.NArg() == 0 {
		return 2, errors.New("usage: launcher -result FILE -- PROGRAM [ARGS...]")
	}

	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	// The program writes straight into our stdout and stderr: no copying
	// goroutine between it and its reader.
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// Should the launcher die, the program dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	hwm := highWaterMark()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 1, err
	}
	// SIGINT and SIGTERM end ctx; the program gets SIGTERM and decides how
	// to stop (backfill commits what is in flight).
	stopSignal := context.AfterFunc(ctx, func() { _ = cmd.Process.Signal(syscall.SIGTERM) })
	waitErr := cmd.Wait()
	stopSignal()

	u := usage{Wall: time.Since(start), LauncherHWM: hwm}
	ps := cmd.ProcessState
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		u.MaxRSS = ru.Maxrss * 1024 // kilobytes on Linux
	}
	u.User = ps.UserTime()
	u.CPU = u.User + ps.SystemTime()
	b, err := json.Marshal(u)
	if err == nil {
		err = os.WriteFile(*result, b, 0o644)
	}
	if err != nil {
		return 1, fmt.Errorf("write %s: %w", *result, err)
	}

	var exitErr *exec.ExitError
	switch {
	case waitErr == nil:
		return 0, nil
	case errors.As(waitErr, &exitErr):
		if st, ok := exitErr.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return 128 + int(st.Signal()), nil // as a shell reports it
		}
		return exitErr.ExitCode(), nil
	default:
		return 1, fmt.Errorf("wait for %s: %w", fs.Arg(0), waitErr)
	}
}

// highWaterMark returns this process's peak resident set so far (VmHWM in
// /proc/self/status), or 0 when it cannot be read.
func highWaterMark() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}
