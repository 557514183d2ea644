package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// row is one line of a table: one measured run.
type row struct {
	run      string
	state    string // the server's: cold or warm
	m        measurement
	messages int     // messages the run handled: copied, or checked by a re-run
	bytes    int64   // the mailbox's bytes it copied; 0 when MB/s means nothing (a re-run)
	received int64   // bytes it received; -1 when not counted
	load     float64 // the machine's 1-minute load average when it started; -1 unknown
	servers  serverTimes
	note     string
}

// report is everything one benchmark run prints and appends.
type report struct {
	date     time.Time
	machine  machine
	software []string // "Dovecot 2.3.19.1", ...
	setup    []string // one line per condition worth knowing
	state    string   // the servers' state at the timed runs, for the heading
	tables   []*table
	targets  []target
}

// table is the rows of one profile and corpus shape.
type table struct {
	profile string
	shape   shape
	corpus  corpus
	rows    []row
	mbsync  *row // the reference rows the ratios are taken against
	floor   *row
}

// target is one of the goals with what was measured. Benchmarks
// report; nothing fails when a target is missed.
type target struct {
	goal     string
	measured string
	met      bool
	known    bool // false when the run could not measure it
}

// machine describes where the numbers come from.
type machine struct {
	uname  string
	cpu    string
	cores  int
	memory string
	disk   string // the file system the Maildir and the database are written to
}

// describeMachine reads uname -srm, /proc/cpuinfo, /proc/meminfo and the
// file system of dir. What cannot be read is reported as unknown rather than
// failing the benchmark.
func describeMachine(dir string) machine {
	m := machine{uname: "unknown", cpu: "unknown", cores: runtime.NumCPU(), memory: "unknown", disk: fileSystem(dir)}
	if out, err := exec.Command("uname", "-srm").Output(); err == nil {
		m.uname = strings.TrimSpace(string(out))
	}
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		m.cpu = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		if kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64); err == nil {
			m.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return m
}

// fileSystem names the file system holding dir, from the longest mount
// point above it in /proc/self/mounts: "ext4 on /dev/vda". mbsync creates a
// file per message, so the file system weighs on its time.
func fileSystem(dir string) string {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	best, desc := "", "unknown"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// device mount-point type options dump pass
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		mnt := fields[1]
		inside := mnt == "/" || dir == mnt || strings.HasPrefix(dir, mnt+"/")
		if inside && len(mnt) >= len(best) {
			best, desc = mnt, fields[2]+" on "+fields[0]
		}
	}
	return desc
}

// procField returns the value of the first "key : value" line of a /proc
// file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// write prints the report as a markdown section.
func (r *report) write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	// The first table's size heads the section: the report of another size
	// is found by it (previousRSS).
	var first corpus
	if len(r.tables) > 0 {
		first = r.tables[0].corpus
	}
	fmt.Fprintf(bw, "## %s: %s messages (%.1f MB), %s\n\n", r.date.UTC().Format("2006-01-02 15:04 MST"),
		thousands(first.messages), first.MB(), cmp.Or(r.state, "cold server"))
	fmt.Fprintf(bw, "- Machine: %s; %s; %d cores; %s RAM; temporary files on %s\n",
		r.machine.uname, r.machine.cpu, r.machine.cores, r.machine.memory, r.machine.disk)
	fmt.Fprintf(bw, "- Software: %s\n", strings.Join(r.software, "; "))
	for _, t := range r.tables {
		if t.profile == r.tables[0].profile {
			fmt.Fprintf(bw, "- Shape %s: %s\n", t.shape.name, t.shape.desc)
		}
	}
	for _, s := range r.setup {
		fmt.Fprintf(bw, "- %s\n", s)
	}
	for _, t := range r.tables {
		fmt.Fprintf(bw, "\n### %s, %s: %s messages, %.1f MB (%.1f KB average)\n\n", t.profile, t.shape.name,
			thousands(t.corpus.messages), t.corpus.MB(), t.corpus.MB()*1e3/float64(max(t.corpus.messages, 1)))
		t.write(bw)
	}
	if len(r.targets) > 0 {
		fmt.Fprintf(bw, "\nTargets (reported, never asserted):\n\n")
		for _, t := range r.targets {
			mark := "missed"
			switch {
			case !t.known:
				mark = "not measured"
			case t.met:
				mark = "met"
			}
			fmt.Fprintf(bw, "- %s: %s, **%s**\n", t.goal, t.measured, mark)
		}
	}
	fmt.Fprintln(bw)
	return bw.Flush()
}

func (t *table) write(w io.Writer) {
	fmt.Fprintln(w, "| run | server | seconds | msgs/s | MB/s | MB received | % of mailbox | peak RSS MB | CPU s | Dovecot CPU s | PostgreSQL CPU s | ×mbsync time | ×floor time | load | notes |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, x := range t.rows {
		secs := x.m.elapsed.Seconds()
		mbs, recv, share, load := "–", "–", "–", "–"
		if x.bytes > 0 {
			mbs = fmt.Sprintf("%.1f", float64(x.bytes)/1e6/secs)
		}
		if x.received >= 0 {
			recv = fmt.Sprintf("%.1f", float64(x.received)/1e6)
			if t.corpus.bytes > 0 {
				share = fmt.Sprintf("%.1f%%", 100*float64(x.received)/float64(t.corpus.bytes))
			}
		}
		if x.load >= 0 {
			load = fmt.Sprintf("%.2f", x.load)
		}
		fmt.Fprintf(w, "| %s | %s | %.2f | %.0f | %s | %s | %s | %.0f | %.1f | %s | %s | %s | %s | %s | %s |\n",
			x.run, x.state, secs, float64(x.messages)/secs, mbs, recv, share, float64(x.m.maxRSS)/1e6, x.m.cpu.Seconds(),
			cpuSeconds(x.servers.dovecot), cpuSeconds(x.servers.postgres), ratio(x, t.mbsync), ratio(x, t.floor), load, x.note)
	}
}

// cpuSeconds is a server's CPU time, "–" when unknown.
func cpuSeconds(d time.Duration) string {
	if d < 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", d.Seconds())
}

// ratio is x's wall time over ref's, "–" without a reference.
func ratio(x row, ref *row) string {
	if ref == nil || ref.m.elapsed <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", x.m.elapsed.Seconds()/ref.m.elapsed.Seconds())
}

// thousands writes 10000 as 10,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// benchmarksHeader starts BENCHMARKS.md when the first run creates it.
const benchmarksHeader = `# Benchmarks

Each section is one ` + "`make bench`" + ` run (internal/cmd/bench), appended as it finished:
the same generated corpus copied by the raw-fetch floor, mbsync and backfill on one machine,
against a private Dovecot on 127.0.0.1, straight or through a proxy that shapes the link.
Compare rows within a section; sections from different machines are not comparable.
Benchmarks report; nothing fails on a slow number.

`

// appendReport appends the section to path, creating the file with its
// header when it is absent.
// publish prints a report's section and, when path is set, appends it to
// that file (BENCHMARKS.md), saying so through logf.
func publish(stdout io.Writer, path string, section []byte, logf func(string, ...any)) error {
	fmt.Fprintln(stdout)
	if _, err := stdout.Write(section); err != nil {
		return err
	}
	if path == "" {
		return nil
	}
	if err := appendReport(path, section); err != nil {
		return err
	}
	logf("appended to %s", path)
	return nil
}

func appendReport(path string, section []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	info, err := f.Stat()
	if err == nil && info.Size() == 0 {
		_, err = f.WriteString(benchmarksHeader)
	}
	if err == nil {
		_, err = f.Write(section)
	}
	err = errors.Join(err, f.Close())
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return nil
}
