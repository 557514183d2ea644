// Package procgroup finds and waits for the processes of a process group, for
// the test servers (Dovecot, Cyrus, Courier) that fork workers into the group
// of the master they were started as.
package procgroup

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Processes returns the live (not zombie) processes of process group pgid,
// read from /proc.
func Processes(pgid int) []int {
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

// WaitGone waits until process group pgid has no live process, and kills
// what is left after timeout; the error then names server, the program
// that was stopped.
func WaitGone(pgid int, timeout time.Duration, server string) error {
	deadline := time.Now().Add(timeout)
	for {
		pids := Processes(pgid)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			return fmt.Errorf("processes %v still running %v after %s stopped; killed", pids, timeout, server)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
