package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A contender's own CPU time leaves out the servers it keeps busy, yet on a
// 2-core machine that also runs Dovecot and PostgreSQL their time is much
// of the story: a lean fetch moves work from the client into Dovecot. So
// the benchmark reads the servers' CPU time from /proc before and after
// each run: the master process's own and its reaped children's (an IMAP
// session or a database backend ends with its connection), and the live
// children's.

// clockTick is the unit of /proc's CPU times: USER_HZ, 100 on Linux.
const clockTick = 10 * time.Millisecond

// serverCPU is the CPU time used so far by a server's process tree, or -1
// when its master is unknown or gone.
func serverCPU(master int) time.Duration {
	if master <= 0 {
		return -1
	}
	own, ok := procTimes(master)
	if !ok {
		return -1
	}
	total := own
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == master {
			continue
		}
		if procParent(pid) == master {
			if t, ok := procTimes(pid); ok {
				total += t
			}
		}
	}
	return total
}

// procStat returns the fields of /proc/PID/stat after the command name
// (which may hold spaces): field 3 (state) is the first.
func procStat(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// procTimes is utime+stime+cutime+cstime (fields 14 to 17).
func procTimes(pid int) (time.Duration, bool) {
	f := procStat(pid)
	if len(f) < 15 {
		return 0, false
	}
	var ticks int64
	for _, v := range f[11:15] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, true
}

// procParent is field 4, the parent's pid; 0 when unknown.
func procParent(pid int) int {
	f := procStat(pid)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// serverTimes is the CPU time Dovecot's and PostgreSQL's process trees
// have used so far.
type serverTimes struct{ dovecot, postgres time.Duration }

func (b *benchCmd) serverTimes() serverTimes {
	return serverTimes{dovecot: serverCPU(b.dovecotPID), postgres: serverCPU(b.pgPID)}
}

// since is what the servers used from t to now; -1 where unknown.
func (t serverTimes) since(b *benchCmd) serverTimes { return t.until(b.serverTimes()) }

// until is what the servers used from t to now; -1 where unknown.
func (t serverTimes) until(now serverTimes) serverTimes {
	d := serverTimes{dovecot: -1, postgres: -1}
	if t.dovecot >= 0 && now.dovecot >= t.dovecot {
		d.dovecot = now.dovecot - t.dovecot
	}
	if t.postgres >= 0 && now.postgres >= t.postgres {
		d.postgres = now.postgres - t.postgres
	}
	return d
}

// findMaster returns the pid of the process whose command line holds all
// of the given arguments, or 0: the Dovecot or PostgreSQL this benchmark
// started, among the others the machine may run.
func findMaster(args ...string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		have := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		all := true
		for _, a := range args {
			found := false
			for _, h := range have {
				if h == a {
					found = true
					break
				}
			}
			all = all && found
		}
		if all && len(args) > 0 {
			return pid
		}
	}
	return 0
}
