package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// samples holds every round's measurement of each contender, by key.
type samples map[string][]row

// median returns the round of median wall time, with the largest peak RSS
// of all rounds: the time is a typical one, the memory the worst seen.
func (s samples) median(key string) row {
	rows := slices.SortedFunc(slices.Values(s[key]), func(x, y row) int { return cmp.Compare(x.m.elapsed, y.m.elapsed) })
	if len(rows) == 0 {
		return row{}
	}
	m := rows[(len(rows)-1)/2]
	for _, r := range rows {
		m.m.maxRSS = max(m.m.maxRSS, r.m.maxRSS)
	}
	return m
}

// contender is one timed program of a profile and shape.
type contender struct {
	key     string // in samples, after the mailbox key
	kind    int
	items   string // the probe's -items
	bin     string // the backfill binary, when not the measured one
	workers int
	full    bool          // backfill --fetch full
	via     *latencyProxy // the delay-only proxy, for the kindDelayed contender
}

// The kinds of contender.
const (
	kindFloor = iota
	kindMbsync
	kindBackfill // the default-workers lean one also does the re-run and the warm run
	kindDelayed  // backfill through 25 ms each way, no bandwidth cap
	kindMbsyncDurable
	kindBackfillDurable
	kindProbe // the floor program asking for sizes or structures, no bodies
)

// probeOver is the size above which the structure-over probe asks for
// BODYSTRUCTURE: about where fetching a message as sections can start to
// save more than the commands cost (imapsrc's leanMin is 16 KiB saved).
const probeOver = 32 << 10

// probes are the server-cost probes run on loopback: what a cold Dovecot
// takes to answer the first fetch of a lean batch, for all messages or only
// for the large ones.
var probes = []struct{ key, items, run string }{
	{"probe-size", "size", "probe: `UID FETCH 1:* RFC822.SIZE`, 1 connection"},
	{"probe-structure", "structure", "probe: `UID FETCH 1:* BODYSTRUCTURE`, 1 connection"},
	{"probe-structure-over", fmt.Sprintf("structure-over:%d", probeOver),
		fmt.Sprintf("probe: `RFC822.SIZE` of all, then `BODYSTRUCTURE` of those over %d KiB, 1 connection", probeOver>>10)},
}

// contenders lists what runs against one mailbox, in the order of the
// first round; later rounds rotate it, so that no contender always follows
// the same one.
func (b *benchCmd) contenders(profile, shape string, delayed *latencyProxy) []contender {
	cs := []contender{{key: "floor", kind: kindFloor}, {key: "mbsync", kind: kindMbsync}}
	for _, w := range b.workers {
		cs = append(cs, contender{key: fmt.Sprintf("lean%d", w), kind: kindBackfill, workers: w})
	}
	cs = append(cs, contender{key: fmt.Sprintf("full%d", defaultWorkers), kind: kindBackfill, workers: defaultWorkers, full: true})
	if b.alt != "" {
		cs = append(cs, contender{key: fmt.Sprintf("alt%d", defaultWorkers), kind: kindBackfill, workers: defaultWorkers, bin: b.alt})
	}
	if profile == profileLoopback && b.probes {
		for _, p := range probes {
			cs = append(cs, contender{key: p.key, kind: kindProbe, items: p.items})
		}
	}
	if profile == profileLoopback && shape == "mixed" {
		// Issue 3's goal: 50 ms round trips cost 8 workers little.
		cs = append(cs, contender{key: "delay8", kind: kindDelayed, workers: 8, via: delayed})
		if b.durable {
			cs = append(cs, contender{key: "mbsync-durable", kind: kindMbsyncDurable},
				contender{key: "durable", kind: kindBackfillDurable, workers: defaultWorkers})
		}
	}
	if len(b.only) > 0 {
		cs = slices.DeleteFunc(cs, func(c contender) bool { return !slices.Contains(b.only, c.key) })
	}
	return cs
}

// measure runs every contender, in rounds, each on a cold server, and
// assembles the report. Rounds interleave the contenders, so that a slow
// spell of the shared machine does not fall on one of them alone.
func (b *benchCmd) measure(ctx context.Context) (*report, error) {
	rep := &report{date: time.Now(), machine: describeMachine(b.dir), state: "cold server"}
	if !b.dropCache {
		rep.state = "cold Dovecot, page cache kept"
	}
	pgVersion, fsync, syncCommit, err := b.dbs.settings(ctx)
	if err != nil {
		return nil, err
	}
	rep.software = b.software(pgVersion)
	rep.setup = []string{
		fmt.Sprintf("Durability, like with like: mbsync `FSync no` against PostgreSQL fsync=%s, synchronous_commit=%s; Dovecot mail_fsync=never", fsync, syncCommit),
	}
	if b.durable {
		_, fsync, syncCommit, err := b.durDB.dbs.settings(ctx)
		if err != nil {
			return nil, err
		}
		if fsync != "on" {
			return nil, fmt.Errorf("the durable PostgreSQL runs with fsync=%s", fsync)
		}
		rep.setup = append(rep.setup, fmt.Sprintf("Durable with durable: mbsync `FSync yes` against PostgreSQL fsync=%s, synchronous_commit=%s (scripts/pg.sh)", fsync, syncCommit))
	}

	delayed, err := startProxy(b.srv.Addr(), b.delay, link{})
	if err != nil {
		return nil, fmt.Errorf("latency proxy: %w", err)
	}
	defer delayed.Close()
	capped, err := startProxy(b.srv.Addr(), b.delay, b.link)
	if err != nil {
		return nil, fmt.Errorf("link proxy: %w", err)
	}
	defer capped.Close()

	s := make(samples)
	var colds []coldServer
	for round := 1; round <= b.runs; round++ {
		for _, p := range b.profiles {
			for _, sh := range b.shapes {
				b.logf("round %d of %d: %s, %s (load %.2f)", round, b.runs, p, sh.name, loadAverage())
				ep := endpoint{mb: b.mailboxes[mailboxKey(p, sh.name)], addr: b.srv.Addr()}
				if p == profileLink {
					ep.addr, ep.proxy = capped.Addr(), capped
				}
				cs := b.contenders(p, sh.name, delayed)
				if len(cs) == 0 {
					continue
				}
				// Rotate, so each contender takes each place in turn.
				k := (round - 1) % len(cs)
				cs = slices.Concat(cs[k:], cs[:k])
				for _, c := range cs {
					cold, err := b.makeCold(ctx, ep.mb)
					if err != nil {
						return nil, err
					}
					colds = append(colds, cold)
					if err := b.runContender(ctx, s, mailboxKey(p, sh.name), round, ep, c); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	rep.setup = append(rep.setup, b.describeSetup(colds)...)
	b.assemble(rep, s)
	return rep, nil
}

// runContender runs c once on a server just made cold and adds its rows.
func (b *benchCmd) runContender(ctx context.Context, s samples, mbKey string, round int, ep endpoint, c contender) error {
	add := func(key string, r row) { s[mbKey+"/"+key] = append(s[mbKey+"/"+key], r) }
	name := fmt.Sprintf("%s-%s-r%d", strings.ReplaceAll(mbKey, "/", "-"), c.key, round)
	var r row
	var err error
	switch c.kind {
	case kindFloor, kindProbe:
		r, err = b.floor(ctx, name, ep, c.items)
	case kindMbsync, kindMbsyncDurable:
		r, err = b.mbsync(ctx, name, ep, c.kind == kindMbsyncDurable)
	case kindBackfill, kindDelayed, kindBackfillDurable:
		run := backfillRun{db: strings.ReplaceAll(name, "-", "_"), dbs: b.dbs, ep: ep, workers: c.workers, full: c.full, bin: c.bin}
		switch {
		case c.kind == kindDelayed:
			run.ep = endpoint{mb: ep.mb, addr: c.via.Addr()}
		case c.kind == kindBackfillDurable:
			run.dbs = b.durDB.dbs
		case c.workers == defaultWorkers && !c.full && c.bin == "":
			run.rerun, run.warm = true, true
		}
		var re, warm row
		r, re, warm, err = b.backfillFull(ctx, run)
		if err == nil && run.rerun {
			add("rerun", re)
			add("warm", warm)
		}
	}
	if err != nil {
		return err
	}
	flushDisk()
	add(c.key, r)
	return nil
}

// describeSetup says how the server was made cold, and what was measured.
func (b *benchCmd) describeSetup(colds []coldServer) []string {
	var index []time.Duration
	var dropErr error
	for _, c := range colds {
		index = append(index, c.index)
		if c.dropped != nil {
			dropErr = c.dropped
		}
	}
	slices.Sort(index)
	cache := "then the kernel's page cache dropped (`echo 3 > /proc/sys/vm/drop_caches`), so message files are read from disk; the measured programs and Dovecot's are read back in first"
	if dropErr != nil {
		cache = fmt.Sprintf("the kernel's page cache could **not** be dropped (%v): message files may be read from memory", dropErr)
	}
	out := []string{
		fmt.Sprintf("Cold server, before every timed run but the re-run and the warm row: the mailbox's Maildir replaced by a fresh copy of its files (Dovecot's index, UID list and field cache gone), named with `S=` and `W=` sizes as Dovecot's own deliveries are; one untimed EXAMINE builds the new index without caching any message field (it took %s to %s); %s",
			seconds(index[0]), seconds(index[len(index)-1]), cache),
		"Warm rows: the same server state a cold `--workers 4` run has just left (Dovecot has computed and cached every BODYSTRUCTURE and size it was asked for), a new empty database",
		"Loopback profile: straight to 127.0.0.1; MB received = backfill's own count of the body bytes it received (its summary's Transferred line)",
		fmt.Sprintf("backfill: default flags (--batch-size 100, --fetch auto) but --workers and --fetch; each full run into a new database, migrated first (untimed); the re-run repeats the `--workers %d` run on its database", defaultWorkers),
		fmt.Sprintf("Each row is the median of %d rounds by wall time, with the largest peak RSS of the %d; each round runs the contenders of a mailbox in a rotated order, a cold server before each", b.runs, b.runs),
		"Measured per child process, started from a small launcher: wall time start to exit; peak RSS and CPU (user+system) from its rusage. The CPU column leaves out the servers (Dovecot, PostgreSQL). Load: the machine's 1-minute load average when that run started (2 cores, shared with other work)",
	}
	if slices.Contains(b.profiles, profileLink) {
		out = slices.Insert(out, 2, fmt.Sprintf("Link profile: every contender through a TCP proxy in the bench process: %v each way (%v round trip), %.1f MB/s per connection and direction, %.1f MB/s in all; MB received = bytes the proxy carried from Dovecot to the client, IMAP framing included",
			b.delay, 2*b.delay, b.link.perConn/1e6, b.link.total/1e6))
	}
	return out
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// assemble turns the samples into tables, in reading order, and the
// targets.
func (b *benchCmd) assemble(rep *report, s samples) {
	ascending := slices.Sorted(slices.Values(b.workers))
	for _, p := range b.profiles {
		for _, sh := range b.shapes {
			mbKey := mailboxKey(p, sh.name)
			mb := b.mailboxes[mbKey]
			get := func(key string) row { return s.median(mbKey + "/" + key) }
			t := &table{profile: p, shape: sh, corpus: mb.corpus}
			// Rows not measured (see -only) are left out.
			add := func(r row) {
				if r.m.elapsed > 0 {
					t.rows = append(t.rows, r)
				}
			}
			floor := get("floor")
			floor.state = "cold"
			mbsync := get("mbsync")
			mbsync.run = "mbsync → Maildir, `FSync no`"
			mbsync.state = "cold"
			mbsync.note = b.isync.version + "; " + kernelShare(mbsync)
			add(floor)
			add(mbsync)
			for _, w := range ascending {
				r := get(fmt.Sprintf("lean%d", w))
				r.run, r.state = fmt.Sprintf("backfill `--workers %d`", w), "cold"
				if w == defaultWorkers {
					r.note = "--fetch auto, the default; compared with mbsync"
				}
				add(r)
			}
			full := get(fmt.Sprintf("full%d", defaultWorkers))
			full.run, full.state = fmt.Sprintf("backfill `--workers %d --fetch full`", defaultWorkers), "cold"
			add(full)
			if b.alt != "" {
				alt := get(fmt.Sprintf("alt%d", defaultWorkers))
				alt.run, alt.state = fmt.Sprintf("experiment: `%s --workers %d`", filepath.Base(b.alt), defaultWorkers), "cold"
				alt.note = "-alt " + b.alt
				add(alt)
			}
			if warm := get("warm"); warm.m.elapsed > 0 {
				warm.run, warm.state = fmt.Sprintf("backfill `--workers %d`", defaultWorkers), "warm"
				warm.note = "Dovecot's caches as the cold run left them"
				t.rows = append(t.rows, warm)
			}
			if re := get("rerun"); re.m.elapsed > 0 {
				re.run, re.state = fmt.Sprintf("backfill re-run, nothing new, `--workers %d`", defaultWorkers), "warm"
				re.note = "lists UIDs, downloads no body; msgs/s = messages checked"
				t.rows = append(t.rows, re)
			}
			for _, p := range probes {
				if r := get(p.key); r.m.elapsed > 0 {
					r.run, r.state = p.run, "cold"
					t.rows = append(t.rows, r)
				}
			}
			if d := get("delay8"); d.m.elapsed > 0 {
				d.run, d.state = fmt.Sprintf("backfill `--workers 8` via %v each way, no bandwidth cap", b.delay), "cold"
				d.received = -1
				t.rows = append(t.rows, d)
			}
			if dm := get("mbsync-durable"); dm.m.elapsed > 0 {
				dm.run, dm.state, dm.note = "mbsync → Maildir, `FSync yes`", "cold", kernelShare(dm)
				db := get("durable")
				db.run, db.state = fmt.Sprintf("backfill `--workers %d`, durable database (fsync=on)", defaultWorkers), "cold"
				db.note = fmt.Sprintf("%.2f× the time of mbsync `FSync yes`", db.m.elapsed.Seconds()/dm.m.elapsed.Seconds())
				t.rows = append(t.rows, dm, db)
			}
			// The ratio columns are taken against these two.
			for i := range t.rows {
				switch t.rows[i].run {
				case floor.run:
					t.floor = &t.rows[i]
				case mbsync.run:
					t.mbsync = &t.rows[i]
				}
			}
			rep.tables = append(rep.tables, t)
			rep.targets = append(rep.targets, b.targets(t, get)...)
		}
	}
	rep.targets = append(rep.targets, b.memoryTargets(rep)...)
}

// targets sets one table's measurements against issue 9's goals, and issue
// 3's that must stay met.
func (b *benchCmd) targets(t *table, get func(string) row) []target {
	var ts []target
	where := fmt.Sprintf("%s, %s", t.profile, t.shape.name)
	lean, mbsync := get(fmt.Sprintf("lean%d", defaultWorkers)), get("mbsync")
	full := get(fmt.Sprintf("full%d", defaultWorkers))
	if lean.m.elapsed <= 0 || mbsync.m.elapsed <= 0 {
		return nil
	}
	x := lean.m.elapsed.Seconds() / mbsync.m.elapsed.Seconds()
	switch t.profile {
	case profileLoopback:
		ts = append(ts, target{goal: fmt.Sprintf("%s, cold: `--workers %d` ≤ 0.6× mbsync's time", where, defaultWorkers),
			measured: fmt.Sprintf("%.2f×", x), met: x <= 0.6, known: true})
		if full.m.elapsed > 0 {
			y := lean.m.elapsed.Seconds() / full.m.elapsed.Seconds()
			ts = append(ts, target{goal: fmt.Sprintf("%s, cold: `--workers %d` never slower than `--fetch full`", where, defaultWorkers),
				measured: fmt.Sprintf("%.2f× its time", y), met: y <= 1, known: true})
		}
		if re := get("rerun"); re.messages > 0 {
			per := re.m.elapsed.Seconds() * 10000 / float64(re.messages)
			ts = append(ts, target{goal: fmt.Sprintf("%s: re-run ≤ 1 s per 10,000 messages", where),
				measured: fmt.Sprintf("%.2f s per 10,000", per), met: per <= 1, known: true})
		}
		if d, l := get("delay8"), get("lean8"); d.m.elapsed > 0 && l.m.elapsed > 0 {
			pct := 100 * l.m.elapsed.Seconds() / d.m.elapsed.Seconds()
			ts = append(ts, target{goal: fmt.Sprintf("%s: `--workers 8` through %v round trips ≥ 70%% of its loopback throughput", where, 2*b.delay),
				measured: fmt.Sprintf("%.0f%%", pct), met: pct >= 70, known: true})
		}
	case profileLink:
		goal := 0.06
		if t.shape.name != "attachments" {
			goal = 0 // reported, no goal set
		}
		tt := target{goal: fmt.Sprintf("%s: `--workers %d` ≤ 0.06× mbsync's time", where, defaultWorkers),
			measured: fmt.Sprintf("%.3f×", x), met: x <= 0.06, known: true}
		if goal == 0 {
			tt.goal = fmt.Sprintf("%s: `--workers %d` against mbsync's time (no goal set)", where, defaultWorkers)
			tt.known = false
		}
		ts = append(ts, tt)
		if lean.received >= 0 {
			pct := 100 * float64(lean.received) / float64(t.corpus.bytes)
			ts = append(ts, target{goal: fmt.Sprintf("%s: `--workers %d` receives ≤ 10%% of the mailbox's bytes", where, defaultWorkers),
				measured: fmt.Sprintf("%.1f%% (%.1f of %.1f MB)", pct, float64(lean.received)/1e6, t.corpus.MB()), met: pct <= 10, known: true})
		}
	}
	return ts
}

// memoryTargets are issue 3's memory goals over all tables.
func (b *benchCmd) memoryTargets(rep *report) []target {
	var peak row
	var headline row
	for _, t := range rep.tables {
		for _, r := range t.rows {
			if strings.HasPrefix(r.run, "backfill") && r.m.maxRSS > peak.m.maxRSS {
				peak = r
			}
		}
		i := slices.IndexFunc(t.rows, func(r row) bool { return r.run == fmt.Sprintf("backfill `--workers %d`", defaultWorkers) })
		if t.profile == profileLoopback && t.shape.name == "mixed" && i >= 0 {
			headline = t.rows[i]
		}
	}
	var ts []target
	if peak.m.maxRSS > 0 {
		mb := float64(peak.m.maxRSS) / 1e6
		ts = append(ts, target{goal: "peak RSS ≤ 150 MB",
			measured: fmt.Sprintf("%.0f MB at most (%s)", mb, peak.run), met: mb <= 150, known: true})
	}
	return append(ts, b.rssAcrossSizes(headline))
}

// kernelShare says how much of mbsync's CPU time went to the kernel: it
// writes a file per message, and on some file systems that is most of its
// time.
func kernelShare(r row) string {
	return fmt.Sprintf("%.1f s of its CPU in the kernel (a file per message)", (r.m.cpu - r.m.user).Seconds())
}

// rssAcrossSizes compares this run's peak RSS for the default full run on
// the mixed loopback mailbox with the latest section for the other corpus
// size (10,000 or 50,000) already in the report file: memory must not grow
// with the mailbox.
func (b *benchCmd) rssAcrossSizes(full row) target {
	t := target{goal: "peak RSS the same at 50,000 messages as at 10,000"}
	other := 50000
	if b.n == 50000 {
		other = 10000
	} else if b.n != 10000 {
		t.measured = "only measured with BENCH_N 10000 or 50000"
		return t
	}
	prev, when, ok := previousRSS(b.out, other)
	if full.m.maxRSS <= 0 || !ok {
		t.measured = fmt.Sprintf("run `BENCH_N=%d make bench` too; the two sections are compared", other)
		return t
	}
	now := float64(full.m.maxRSS) / 1e6
	t.known = true
	t.met = now <= prev*1.1 && prev <= now*1.1
	t.measured = fmt.Sprintf("%.0f MB at %s messages, %.0f MB at %s (section of %s), `--workers %d`",
		now, thousands(b.n), prev, thousands(other), when, defaultWorkers)
	return t
}

// previousRSS finds, in a report file, the latest section for n messages
// and returns the peak RSS of its first default-workers full run (the mixed
// loopback one) and the section's date. The RSS column is found by its
// header, as tables have gained columns over time.
func previousRSS(path string, n int) (rss float64, when string, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, "", false
	}
	header := fmt.Sprintf(": %s messages (", thousands(n))
	rowStarts := []string{
		fmt.Sprintf("| backfill, empty database, `--workers %d` |", defaultWorkers), // before issue 9
		fmt.Sprintf("| backfill `--workers %d` | cold |", defaultWorkers),
	}
	section, col, found := "", -1, false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "## ") {
			section, col, found = "", 5, false
			if i := strings.Index(line, header); i > 0 {
				section = line[3:i]
			}
			continue
		}
		if strings.HasPrefix(line, "| run |") {
			col = slices.IndexFunc(strings.Split(line, "|"), func(c string) bool { return strings.TrimSpace(c) == "peak RSS MB" })
			continue
		}
		if section == "" || found || col < 0 || !slices.ContainsFunc(rowStarts, func(p string) bool { return strings.HasPrefix(line, p) }) {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) <= col {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(cells[col]), 64); err == nil {
			rss, when, ok, found = v, section, true, true
		}
	}
	return rss, when, ok
}
