package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// measurement is what one child process cost, measured from outside it the
// same way for every contender.
type measurement struct {
	elapsed  time.Duration // wall time from start to exit
	maxRSS   int64         // peak resident set size, bytes
	cpu      time.Duration // user + system time
	user     time.Duration // of which in user space
	rssFloor int64         // maxRSS cannot be below this (see the launcher)
	stdout   []byte
}

// child is a program to measure.
type child struct {
	name     string   // for errors and the log file
	launcher string   // the launcher binary, which runs and measures it
	path     string   // the program
	args     []string // its arguments
	env      []string // its whole environment
	dir      string   // its working directory
	logDir   string   // where its output is kept for a post-mortem
	timeout  time.Duration
}

// run runs the child to completion through the launcher and measures it.
// A non-zero exit is an error that ends with the tail of the child's output.
//
// The launcher gets its own process group, so a Ctrl-C reaches only us and
// we decide how the child stops: SIGTERM, passed on by the launcher, when ctx
// ends or the timeout passes (backfill then commits what is in flight);
// SIGKILL to the launcher 10 seconds later, and the kernel then kills the
// child (Pdeathsig), as it kills the launcher should we die without cleaning
// up.
func (c child) run(ctx context.Context) (measurement, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	s, err := c.start(ctx)
	if err != nil {
		return measurement{}, err
	}
	return s.wait(nil)
}

// started is a child running under the launcher; wait measures it.
type started struct {
	c              child
	ctx            context.Context
	cmd            *exec.Cmd
	result         string
	stdout, stderr bytes.Buffer
}

// start starts the child through the launcher; ctx ending sends it SIGTERM
// (see run).
func (c child) start(ctx context.Context) (*started, error) {
	s := &started{c: c, ctx: ctx, result: filepath.Join(c.logDir, c.name+".usage.json")}
	args := append([]string{"-result", s.result, "--", c.path}, c.args...)
	cmd := exec.CommandContext(ctx, c.launcher, args...)
	cmd.Env, cmd.Dir = c.env, c.dir
	cmd.Stdout, cmd.Stderr = &s.stdout, &s.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	s.cmd = cmd
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	return s, nil
}

// wait waits for the child to exit and reads its measurements. An exit
// code other than 0 and those in also is an error that ends with the tail
// of the child's output.
func (s *started) wait(also []int) (measurement, error) {
	c := s.c
	err := s.cmd.Wait()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && slices.Contains(also, exitErr.ExitCode()) {
		err = nil
	}

	m := measurement{stdout: s.stdout.Bytes()}
	logFile := filepath.Join(c.logDir, c.name+".log")
	_ = os.WriteFile(logFile, bytes.Join([][]byte{s.stdout.Bytes(), s.stderr.Bytes()}, []byte("\n--- stderr ---\n")), 0o644)
	if err != nil {
		if s.ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %v: %w", c.timeout, err)
		}
		return m, fmt.Errorf("%s: %w\n%s", c.name, err, tail(s.stdout.Bytes(), s.stderr.Bytes(), 1500))
	}
	b, err := os.ReadFile(s.result)
	if err != nil {
		return m, fmt.Errorf("%s: read its measurements: %w", c.name, err)
	}
	var u usage
	if err := json.Unmarshal(b, &u); err != nil {
		return m, fmt.Errorf("%s: read its measurements: %w", c.name, err)
	}
	m.elapsed, m.maxRSS, m.cpu, m.user, m.rssFloor = u.Wall, u.MaxRSS, u.CPU, u.User, u.LauncherHWM
	return m, nil
}

// usage is what the launcher writes to its result file.
type usage struct {
	Wall        time.Duration `json:"wall_ns"`
	MaxRSS      int64         `json:"max_rss_bytes"`
	CPU         time.Duration `json:"cpu_ns"`
	User        time.Duration `json:"user_ns"`
	LauncherHWM int64         `json:"launcher_hwm_bytes"`
}

// String is the measurement for the progress log.
func (m measurement) String() string {
	return fmt.Sprintf("%.2f s, CPU %.2f s user + %.2f s system, peak RSS %.0f MB",
		m.elapsed.Seconds(), m.user.Seconds(), (m.cpu - m.user).Seconds(), float64(m.maxRSS)/1e6)
}

// tail returns the end of a child's output for an error message.
func tail(stdout, stderr []byte, n int) string {
	b := bytes.TrimSpace(bytes.Join([][]byte{bytes.TrimSpace(stdout), bytes.TrimSpace(stderr)}, []byte("\n")))
	if len(b) > n {
		b = append([]byte("…"), b[len(b)-n:]...)
	}
	return string(b)
}
