package main

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"os"
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

// measure runs every contender, in rounds, and assembles the report. Rounds
// interleave the contenders, so that a slow spell of the machine does not
// fall on one of them alone.
func (b *benchCmd) measure(ctx context.Context) (*report, error) {
	rep := &report{date: time.Now(), machine: describeMachine(b.dir), corpus: b.corpus}
	pgVersion, fsync, syncCommit, err := b.dbs.settings(ctx)
	if err != nil {
		return nil, err
	}
	rep.software = b.software(pgVersion)
	rep.setup = []string{
		fmt.Sprintf("Durability, like with like: mbsync `FSync no` against PostgreSQL fsync=%s, synchronous_commit=%s; Dovecot mail_fsync=never", fsync, syncCommit),
		fmt.Sprintf("Network: everything on 127.0.0.1; the proxy rows go through a TCP proxy in the bench process that delays each direction by %v (%v round trip) without limiting bandwidth", b.delay, 2*b.delay),
		fmt.Sprintf("backfill: default flags (--batch-size 100) but --workers; each full run into a new database, migrated first (untimed); the re-run repeats the `--workers %d` run on its database", b.workers[0]),
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

	// Dovecot indexes the Maildir on the first SELECT, and the first read
	// brings the files into the page cache: neither belongs to whoever runs
	// first.
	b.logf("warm-up: one untimed raw fetch")
	if _, err := b.floor(ctx, "warmup"); err != nil {
		return nil, err
	}
	flushDisk()

	proxy, err := startProxy(b.srv.Addr(), b.delay, link{})
	if err != nil {
		return nil, fmt.Errorf("latency proxy: %w", err)
	}
	defer proxy.Close()
	direct := b.srv.URL(benchUser, "INBOX")
	via := (&url.URL{Scheme: "imap", User: url.User(benchUser), Host: proxy.Addr(), Path: "/INBOX"}).String()

	s := make(samples)
	for round := 1; round <= b.runs; round++ {
		b.logf("round %d of %d", round, b.runs)
		if err := b.round(ctx, s, round, direct, via); err != nil {
			return nil, err
		}
	}
	b.assemble(rep, s)
	return rep, nil
}

// round measures every contender once.
func (b *benchCmd) round(ctx context.Context, s samples, round int, direct, via string) error {
	add := func(key string, r row) { s[key] = append(s[key], r) }
	r, err := b.floor(ctx, fmt.Sprintf("floor_r%d", round))
	if err != nil {
		return err
	}
	add("floor", r)
	flushDisk()
	if r, err = b.mbsync(ctx, fmt.Sprintf("mbsync_r%d", round), false); err != nil {
		return err
	}
	add("mbsync", r)
	flushDisk()

	for i, w := range b.workers {
		full, re, err := b.backfillFull(ctx, backfillRun{db: fmt.Sprintf("full_w%d_r%d", w, round), dbs: b.dbs,
			imapURL: direct, workers: w, rerun: i == 0})
		if err != nil {
			return err
		}
		add(fmt.Sprintf("full%d", w), full)
		if i == 0 {
			add("rerun", re)
		}
	}
	for _, w := range b.workers {
		full, _, err := b.backfillFull(ctx, backfillRun{db: fmt.Sprintf("proxy_w%d_r%d", w, round), dbs: b.dbs,
			imapURL: via, workers: w})
		if err != nil {
			return err
		}
		add(fmt.Sprintf("proxy%d", w), full)
	}

	if !b.durable {
		return nil
	}
	if r, err = b.mbsync(ctx, fmt.Sprintf("mbsync_fsync_r%d", round), true); err != nil {
		return err
	}
	add("mbsync-durable", r)
	flushDisk()
	full, _, err := b.backfillFull(ctx, backfillRun{db: fmt.Sprintf("durable_w%d_r%d", b.workers[0], round), dbs: b.durDB.dbs,
		imapURL: direct, workers: b.workers[0]})
	if err != nil {
		return err
	}
	add("durable", full)
	return nil
}

// assemble turns the samples into the table's rows, in reading order, and
// the targets.
func (b *benchCmd) assemble(rep *report, s samples) {
	if b.runs > 1 {
		rep.setup = append(rep.setup, fmt.Sprintf("Each row is the median of %d rounds by wall time, with the largest peak RSS of the %d", b.runs, b.runs))
	}
	floor := s.median("floor")
	rep.setup = append(rep.setup, fmt.Sprintf("Measured per child process, started from a small launcher: wall time start to exit; "+
		"peak RSS and CPU (user+system) from its rusage, RSS exact above the launcher's own %.0f MB. "+
		"The CPU column leaves out the servers (Dovecot, PostgreSQL). Warm cache: one untimed floor run first", float64(floor.m.rssFloor)/1e6))

	mbsync := s.median("mbsync")
	mbsync.run = "mbsync → Maildir, `FSync no`"
	mbsync.note = b.isync.version + "; " + kernelShare(mbsync)
	rep.rows = append(rep.rows, floor, mbsync)

	ascending := slices.Sorted(slices.Values(b.workers))
	loopback := make(map[int]row)
	for _, w := range ascending {
		full := s.median(fmt.Sprintf("full%d", w))
		full.run = fmt.Sprintf("backfill, empty database, `--workers %d`", w)
		if w == defaultWorkers {
			full.note = "backfill's default; compared with mbsync"
		}
		loopback[w] = full
		rep.rows = append(rep.rows, full)
		if w == b.workers[0] {
			re := s.median("rerun")
			re.run = fmt.Sprintf("backfill re-run, nothing new, `--workers %d`", w)
			re.note = "lists UIDs, downloads no body; msgs/s = messages checked"
			rep.rows = append(rep.rows, re)
		}
	}
	proxied := make(map[int]row)
	for _, w := range ascending {
		p := s.median(fmt.Sprintf("proxy%d", w))
		p.run = fmt.Sprintf("backfill via %v proxy, `--workers %d`", b.delay, w)
		p.note = fmt.Sprintf("%.0f%% of the loopback `--workers %d` throughput", 100*loopback[w].m.elapsed.Seconds()/p.m.elapsed.Seconds(), w)
		proxied[w] = p
		rep.rows = append(rep.rows, p)
	}
	var durable, durableMbsync row
	if b.durable {
		durableMbsync = s.median("mbsync-durable")
		durableMbsync.run = "mbsync → Maildir, `FSync yes`"
		durableMbsync.note = kernelShare(durableMbsync)
		durable = s.median("durable")
		durable.run = fmt.Sprintf("backfill, empty durable database (fsync=on), `--workers %d`", b.workers[0])
		durable.note = fmt.Sprintf("%.2f× the time of mbsync `FSync yes`", durable.m.elapsed.Seconds()/durableMbsync.m.elapsed.Seconds())
		rep.rows = append(rep.rows, durableMbsync, durable)
	}
	// The ratio columns are taken against the first two rows.
	rep.floor, rep.mbsync = &rep.rows[0], &rep.rows[1]
	rep.targets = b.targets(floor, mbsync, loopback, s.median("rerun"), proxied, durableMbsync, durable)
}

// targets sets the measurements against the goals.
func (b *benchCmd) targets(floor, mbsync row, loopback map[int]row, rerun row, proxied map[int]row, durableMbsync, durable row) []target {
	var ts []target
	if full, ok := loopback[defaultWorkers]; ok {
		x := full.m.elapsed.Seconds() / mbsync.m.elapsed.Seconds()
		ts = append(ts, target{goal: fmt.Sprintf("full run (`--workers %d`) ≤ 0.6× mbsync's time", defaultWorkers),
			measured: fmt.Sprintf("%.2f×", x), met: x <= 0.6, known: true})
		if durable.m.elapsed > 0 && b.workers[0] == defaultWorkers {
			x := durable.m.elapsed.Seconds() / durableMbsync.m.elapsed.Seconds()
			ts = append(ts, target{goal: "the same, both durable (`FSync yes`, fsync=on)",
				measured: fmt.Sprintf("%.2f×", x), met: x <= 0.6, known: true})
		}
		x = full.m.elapsed.Seconds() / floor.m.elapsed.Seconds()
		ts = append(ts, target{goal: fmt.Sprintf("full run (`--workers %d`) ≤ 2.5× the raw-fetch floor's time", defaultWorkers),
			measured: fmt.Sprintf("%.2f×", x), met: x <= 2.5, known: true})
	}
	if rerun.messages > 0 {
		per := rerun.m.elapsed.Seconds() * 10000 / float64(rerun.messages)
		ts = append(ts, target{goal: "re-run ≤ 1 s per 10,000 messages",
			measured: fmt.Sprintf("%.2f s per 10,000", per), met: per <= 1, known: true})
	}
	var peak row
	for _, r := range slices.Concat(mapValues(loopback), mapValues(proxied), []row{rerun, durable}) {
		if r.m.maxRSS > peak.m.maxRSS {
			peak = r
		}
	}
	if peak.m.maxRSS > 0 {
		mb := float64(peak.m.maxRSS) / 1e6
		ts = append(ts, target{goal: "peak RSS ≤ 150 MB",
			measured: fmt.Sprintf("%.0f MB at most (%s)", mb, peak.run), met: mb <= 150, known: true})
	}
	ts = append(ts, b.rssAcrossSizes(loopback[defaultWorkers]))
	if p, ok := proxied[8]; ok {
		if l, ok := loopback[8]; ok {
			pct := 100 * l.m.elapsed.Seconds() / p.m.elapsed.Seconds()
			ts = append(ts, target{goal: fmt.Sprintf("`--workers 8` through %v round trips ≥ 70%% of its loopback throughput", 2*b.delay),
				measured: fmt.Sprintf("%.0f%%", pct), met: pct >= 70, known: true})
		}
	}
	return ts
}

// kernelShare says how much of mbsync's CPU time went to the kernel: it
// writes a file per message, and on some file systems that is most of its
// time.
func kernelShare(r row) string {
	return fmt.Sprintf("%.1f s of its CPU in the kernel (a file per message)", (r.m.cpu - r.m.user).Seconds())
}

func mapValues(m map[int]row) []row {
	out := make([]row, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return out
}

// rssAcrossSizes compares this run's peak RSS for the default full run with
// the latest section for the other corpus size (10,000 or 50,000) already
// in the report file: memory must not grow with the mailbox.
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
// and returns the peak RSS of its default full run and the section's date.
func previousRSS(path string, n int) (rss float64, when string, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, "", false
	}
	header := fmt.Sprintf(": %s messages (", thousands(n))
	rowStart := fmt.Sprintf("| backfill, empty database, `--workers %d` |", defaultWorkers)
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "## ") {
			section = ""
			if i := strings.Index(line, header); i > 0 {
				section = line[3:i]
			}
			continue
		}
		if section == "" || !strings.HasPrefix(line, rowStart) {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 6 {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(cells[5]), 64); err == nil {
			rss, when, ok = v, section, true
		}
	}
	return rss, when, ok
}
