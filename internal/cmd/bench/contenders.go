package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// floorPasswordEnv passes the IMAP password to the floor program.
const floorPasswordEnv = "BENCH_IMAP_PASSWORD"

// endpoint is where a contender finds the mailbox: straight at Dovecot or
// through a proxy, which then counts the bytes.
type endpoint struct {
	mb    *mailbox
	addr  string        // host:port
	proxy *latencyProxy // nil on loopback
}

// url is the mailbox's imap:// URL for backfill.
func (e endpoint) url() string {
	return (&url.URL{Scheme: "imap", User: url.User(e.mb.user), Host: e.addr, Path: "/INBOX"}).String()
}

// counted runs fn and returns the bytes the proxy carried towards the
// client meanwhile, -1 without a proxy. Contenders run one at a time.
func (e endpoint) counted(fn func() error) (int64, error) {
	if e.proxy == nil {
		return -1, fn()
	}
	before, _ := e.proxy.Carried()
	err := fn()
	after, _ := e.proxy.Carried()
	return after - before, err
}

// floor runs the floor program and checks it downloaded the whole corpus;
// with items, it runs it as a probe (see ./floor) and checks every message
// answered.
func (b *benchCmd) floor(ctx context.Context, name string, ep endpoint, items string) (row, error) {
	args := []string{"-addr", ep.addr, "-user", ep.mb.user}
	if items != "" {
		args = append(args, "-items", items)
	}
	c := child{
		name:     name,
		launcher: b.bins.launcher,
		path:     b.bins.floor,
		args:     args,
		env:      append(baseEnv(), floorPasswordEnv+"="+benchPassword),
		dir:      b.dir,
		logDir:   b.logs,
		timeout:  b.timeout,
	}
	load, servers := loadAverage(), b.serverTimes()
	var m measurement
	received, err := ep.counted(func() (err error) { m, err = c.run(ctx); return err })
	if err != nil {
		return row{}, err
	}
	servers = servers.since(b)
	var res struct{ Messages, Bytes, Structures int64 }
	if err := json.Unmarshal(m.stdout, &res); err != nil {
		return row{}, fmt.Errorf("%s: read its result %q: %w", name, m.stdout, err)
	}
	cp := ep.mb.corpus
	if items != "" {
		if res.Messages != int64(cp.messages) || (items != "size" && res.Structures == 0) {
			return row{}, fmt.Errorf("%s: %d messages answered, %d structures; the corpus has %d messages", name, res.Messages, res.Structures, cp.messages)
		}
		b.logf("%s: %v; %d structures", name, m, res.Structures)
		return row{m: m, messages: cp.messages, received: received, load: load, servers: servers,
			note: fmt.Sprintf("%s structures; no bodies", thousands(int(res.Structures)))}, nil
	}
	if res.Messages != int64(cp.messages) || res.Bytes != cp.bytes {
		return row{}, fmt.Errorf("%s: fetched %d messages, %d bytes; the corpus has %d, %d bytes",
			name, res.Messages, res.Bytes, cp.messages, cp.bytes)
	}
	b.logf("%s: %v", name, m)
	return row{run: "raw-fetch floor: 1 connection, `UID FETCH 1:* BODY.PEEK[]`", m: m, messages: cp.messages, bytes: res.Bytes,
		received: received, load: load, servers: servers, note: "go-imap v2 client; bodies read and discarded"}, nil
}

// mbsync pulls the mailbox into a new Maildir and checks every message
// arrived.
func (b *benchCmd) mbsync(ctx context.Context, name string, ep endpoint, fsync bool) (row, error) {
	dir := filepath.Join(b.dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return row{}, err
	}
	// The Maildir holds a copy of the corpus: gone once counted.
	defer os.RemoveAll(dir)
	host, port, _ := strings.Cut(ep.addr, ":")
	job := mbsyncJob{Host: host, Port: port, User: ep.mb.user, Password: benchPassword, Maildir: filepath.Join(dir, "Mail"), FSync: fsync}
	c, err := mbsyncChild(b.isync, job, dir)
	if err != nil {
		return row{}, err
	}
	c.name, c.launcher, c.logDir, c.timeout = name, b.bins.launcher, b.logs, b.timeout
	load, servers := loadAverage(), b.serverTimes()
	var m measurement
	received, err := ep.counted(func() (err error) { m, err = runMbsync(ctx, c, job.Maildir, ep.mb.corpus.messages); return err })
	if err != nil {
		return row{}, err
	}
	servers = servers.since(b)
	b.logf("%s: %v", name, m)
	return row{m: m, messages: ep.mb.corpus.messages, bytes: ep.mb.corpus.bytes, received: received, load: load, servers: servers}, nil
}

// backfillRun is one full backfill into a new database and, if asked for,
// the re-run that follows it and a second full run on the server as the
// first one left it.
type backfillRun struct {
	db      string    // database name, also the name of logs
	dbs     databases // the server it is created on
	ep      endpoint
	workers int
	full    bool   // --fetch full
	bin     string // the backfill binary, when not the measured one
	rerun   bool
	warm    bool
}

// backfillFull migrates a new database, runs backfill into it once (timed)
// and, with rerun, a second time (timed too), then drops the database; with
// warm, it then runs once more into another new database.
func (b *benchCmd) backfillFull(ctx context.Context, r backfillRun) (full, re, warm row, err error) {
	if full, re, err = b.backfillOnce(ctx, r); err != nil || !r.warm {
		return full, re, warm, err
	}
	r.db += "-warm"
	r.rerun = false
	warm, _, err = b.backfillOnce(ctx, r)
	return full, re, warm, err
}

func (b *benchCmd) backfillOnce(ctx context.Context, r backfillRun) (full, re row, err error) {
	dsn, err := r.dbs.create(ctx, r.db)
	if err != nil {
		return full, re, err
	}
	defer func() {
		if ctx.Err() != nil {
			return // the whole cluster is about to be thrown away
		}
		if dropErr := r.dbs.drop(ctx, r.db); dropErr != nil && err == nil {
			err = dropErr
		}
	}()
	name := strings.ToUpper(benchInbox)
	env := append(baseEnv(), "DATABASE_URL="+dsn,
		"BACKFILL_INBOX_"+name+"="+r.ep.url(), "BACKFILL_INBOX_"+name+"_PASSWORD="+benchPassword)
	// Its own working directory, so that no .env of the repository is read.
	work := filepath.Join(b.dir, "work-"+r.db)
	if err := os.Mkdir(work, 0o755); err != nil {
		return full, re, err
	}
	c := child{launcher: b.bins.launcher, path: b.bins.backfill, env: env, dir: work, logDir: b.logs, timeout: b.timeout}
	if r.bin != "" {
		c.path = r.bin
	}

	c.name, c.args = "migrate-"+r.db, []string{"migrate"}
	if _, err := c.run(ctx); err != nil {
		return full, re, err
	}
	c.name, c.args = r.db, []string{"--inbox", benchInbox, "--workers", strconv.Itoa(r.workers)}
	if r.full {
		c.args = append(c.args, "--fetch", "full")
	}
	cp := r.ep.mb.corpus
	load, servers := loadAverage(), b.serverTimes()
	var m measurement
	var sum backfillSummary
	received, err := r.ep.counted(func() (err error) { m, sum, err = b.runBackfill(ctx, c); return err })
	if err != nil {
		return full, re, err
	}
	servers = servers.since(b)
	if sum.downloaded != cp.messages || sum.synced+sum.skipped != cp.messages {
		return full, re, fmt.Errorf("%s: downloaded %d, synced %d, skipped %d of %d messages",
			c.name, sum.downloaded, sum.synced, sum.skipped, cp.messages)
	}
	if received < 0 {
		received = sum.transferred // its own count of body bytes
	}
	b.logf("%s: %v; %d stored, %d duplicates skipped, %.1f MB received", c.name, m, sum.synced, sum.skipped, float64(received)/1e6)
	full = row{m: m, messages: cp.messages, bytes: cp.bytes, received: received, load: load, servers: servers}
	if err := r.dbs.settle(ctx); err != nil {
		return full, re, err
	}
	flushDisk()
	if !r.rerun {
		return full, re, nil
	}

	c.name = r.db + "-rerun"
	load, servers = loadAverage(), b.serverTimes()
	m, sum, err = b.runBackfill(ctx, c)
	if err != nil {
		return full, re, err
	}
	servers = servers.since(b)
	if sum.downloaded != 0 || sum.fetched != cp.messages {
		return full, re, fmt.Errorf("%s: re-run downloaded %d message bodies of %d; want none", c.name, sum.downloaded, sum.fetched)
	}
	b.logf("%s: %v", c.name, m)
	re = row{m: m, messages: cp.messages, received: -1, load: load, servers: servers}
	return full, re, nil
}

// runBackfill runs one backfill and reads its summary; anything but exit 0
// and no failed message is an error.
func (b *benchCmd) runBackfill(ctx context.Context, c child) (measurement, backfillSummary, error) {
	m, err := c.run(ctx)
	if err != nil {
		return m, backfillSummary{}, err
	}
	sum, err := parseSummary(m.stdout)
	if err != nil {
		return m, sum, fmt.Errorf("%s: %w\n%s", c.name, err, tail(m.stdout, nil, 1500))
	}
	if sum.errors != 0 {
		return m, sum, fmt.Errorf("%s: %d messages failed\n%s", c.name, sum.errors, tail(m.stdout, nil, 1500))
	}
	return m, sum, nil
}

// backfillSummary is what backfill's closing block reports.
type backfillSummary struct {
	fetched, synced, skipped, errors, downloaded int
	transferred                                  int64 // bytes of bodies and sections received; 0 if not said
}

// transferredRE reads "Transferred:   6.2 MB of 59.8 MB", which backfill
// prints when it downloaded anything.
var transferredRE = regexp.MustCompile(`Transferred:\s+([0-9.]+) MB of`)

var summaryFields = []struct {
	name string
	re   *regexp.Regexp
	get  func(*backfillSummary) *int
}{
	{"Total fetched", regexp.MustCompile(`Total fetched:\s+(\d+)`), func(s *backfillSummary) *int { return &s.fetched }},
	{"Total synced", regexp.MustCompile(`Total synced:\s+(\d+)`), func(s *backfillSummary) *int { return &s.synced }},
	{"Total skipped", regexp.MustCompile(`Total skipped:\s+(\d+)`), func(s *backfillSummary) *int { return &s.skipped }},
	{"Total errors", regexp.MustCompile(`Total errors:\s+(\d+)`), func(s *backfillSummary) *int { return &s.errors }},
	{"Downloaded", regexp.MustCompile(`Downloaded:\s+(\d+) message bodies`), func(s *backfillSummary) *int { return &s.downloaded }},
}

// parseSummary reads backfill's closing block (see cmd/backfill/output.go).
func parseSummary(out []byte) (backfillSummary, error) {
	var s backfillSummary
	for _, f := range summaryFields {
		m := f.re.FindSubmatch(out)
		if m == nil {
			return s, fmt.Errorf("no %q in backfill's closing block", f.name)
		}
		*f.get(&s), _ = strconv.Atoi(string(m[1]))
	}
	if m := transferredRE.FindSubmatch(out); m != nil {
		mb, _ := strconv.ParseFloat(string(m[1]), 64)
		s.transferred = int64(mb * 1e6)
	}
	return s, nil
}

// baseEnv is the environment children start from: ours, without anything
// that would point backfill elsewhere than the run's servers.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DATABASE_URL=") || strings.HasPrefix(kv, "BACKFILL_") || strings.HasPrefix(kv, floorPasswordEnv+"=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// loadAverage is the machine's load over the last minute, or -1: the
// machine is shared, and the report says how busy it was at each run.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// flushDisk writes out what the last run left in the page cache, so that
// the write-back does not land in the next run's time.
func flushDisk() { syscall.Sync() }
