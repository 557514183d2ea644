package dovecottest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// groupProcesses returns the live (not zombie) processes of process group
// pgid, read from /proc.
func groupProcesses(pgid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the process ended meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) < 3 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(fields[2]); g == pgid {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitGroupGone waits until process group pgid has no live process, and
// kills what is left after timeout.
func waitGroupGone(pgid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids := groupProcesses(pgid)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			return fmt.Errorf("dovecottest: processes %v still running %v after Dovecot stopped; killed", pids, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// makeSearchable lets other users through dir's parents, as Dovecot's users
// (mail, dovenull) must reach dir. Only parents below the temporary directory
// are changed (t.TempDir makes them 0700); elsewhere a closed parent is an
// error.
func makeSearchable(dir string) error {
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		tmp = os.TempDir()
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	for p := filepath.Dir(real); p != filepath.Dir(p); p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 != 0 {
			continue
		}
		if !strings.HasPrefix(p, tmp+string(filepath.Separator)) {
			return fmt.Errorf("users mail and dovenull cannot reach %s: %s is not searchable; use a directory under %s", dir, p, tmp)
		}
		if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
			return err
		}
	}
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// tail returns the end of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}
