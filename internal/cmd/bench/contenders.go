package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// floorPasswordEnv passes the IMAP password to the floor program.
const floorPasswordEnv = "BENCH_IMAP_PASSWORD"

// floor runs the floor program and checks it downloaded the whole corpus.
func (b *benchCmd) floor(ctx context.Context, name string) (row, error) {
	c := child{
		name:     name,
		launcher: b.bins.launcher,
		path:     b.bins.floor,
		args:     []string{"-addr", b.srv.Addr(), "-user", benchUser},
		env:      append(baseEnv(), floorPasswordEnv+"="+benchPassword),
		dir:      b.dir,
		logDir:   b.logs,
		timeout:  b.timeout,
	}
	m, err := c.run(ctx)
	if err != nil {
		return row{}, err
	}
	var res struct{ Messages, Bytes int64 }
	if err := json.Unmarshal(m.stdout, &res); err != nil {
		return row{}, fmt.Errorf("%s: read its result %q: %w", name, m.stdout, err)
	}
	if res.Messages != int64(b.corpus.messages) || res.Bytes != b.corpus.bytes {
		return row{}, fmt.Errorf("%s: fetched %d messages, %d bytes; the corpus has %d, %d bytes",
			name, res.Messages, res.Bytes, b.corpus.messages, b.corpus.bytes)
	}
	b.logf("%s: %v", name, m)
	return row{run: "raw-fetch floor: 1 connection, `UID FETCH 1:* BODY.PEEK[]`", m: m, messages: b.corpus.messages, bytes: res.Bytes,
		note: "go-imap v2 client; bodies read and discarded"}, nil
}

// mbsync pulls the mailbox into a new Maildir and checks every message
// arrived.
func (b *benchCmd) mbsync(ctx context.Context, name string, fsync bool) (row, error) {
	dir := filepath.Join(b.dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return row{}, err
	}
	// The Maildir holds a copy of the corpus: gone once counted.
	defer os.RemoveAll(dir)
	host, port, _ := strings.Cut(b.srv.Addr(), ":")
	job := mbsyncJob{Host: host, Port: port, User: benchUser, Password: benchPassword, Maildir: filepath.Join(dir, "Mail"), FSync: fsync}
	c, err := mbsyncChild(b.isync, job, dir)
	if err != nil {
		return row{}, err
	}
	c.name, c.launcher, c.logDir, c.timeout = name, b.bins.launcher, b.logs, b.timeout
	m, err := runMbsync(ctx, c, job.Maildir, b.corpus.messages)
	if err != nil {
		return row{}, err
	}
	b.logf("%s: %v", name, m)
	return row{m: m, messages: b.corpus.messages, bytes: b.corpus.bytes}, nil
}

// backfillRun is one full backfill into a new database and, if asked for,
// the re-run that follows it.
type backfillRun struct {
	db      string    // database name, also the name of logs
	dbs     databases // the server it is created on
	imapURL string
	workers int
	rerun   bool
}

// backfillFull migrates a new database, runs backfill into it once (timed)
// and, with rerun, a second time (timed too), then drops the database.
func (b *benchCmd) backfillFull(ctx context.Context, r backfillRun) (full, re row, err error) {
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
		"BACKFILL_INBOX_"+name+"="+r.imapURL, "BACKFILL_INBOX_"+name+"_PASSWORD="+benchPassword)
	// Its own working directory, so that no .env of the repository is read.
	work := filepath.Join(b.dir, "work-"+r.db)
	if err := os.Mkdir(work, 0o755); err != nil {
		return full, re, err
	}
	c := child{launcher: b.bins.launcher, path: b.bins.backfill, env: env, dir: work, logDir: b.logs, timeout: b.timeout}

	c.name, c.args = "migrate-"+r.db, []string{"migrate"}
	if _, err := c.run(ctx); err != nil {
		return full, re, err
	}
	c.name, c.args = r.db, []string{"--inbox", benchInbox, "--workers", strconv.Itoa(r.workers)}
	m, sum, err := b.runBackfill(ctx, c)
	if err != nil {
		return full, re, err
	}
	if sum.downloaded != b.corpus.messages || sum.synced+sum.skipped != b.corpus.messages {
		return full, re, fmt.Errorf("%s: downloaded %d, synced %d, skipped %d of %d messages",
			c.name, sum.downloaded, sum.synced, sum.skipped, b.corpus.messages)
	}
	b.logf("%s: %v; %d stored, %d duplicates skipped", c.name, m, sum.synced, sum.skipped)
	full = row{m: m, messages: b.corpus.messages, bytes: b.corpus.bytes}
	if err := r.dbs.settle(ctx); err != nil {
		return full, re, err
	}
	flushDisk()
	if !r.rerun {
		return full, re, nil
	}

	c.name = r.db + "-rerun"
	m, sum, err = b.runBackfill(ctx, c)
	if err != nil {
		return full, re, err
	}
	if sum.downloaded != 0 || sum.fetched != b.corpus.messages {
		return full, re, fmt.Errorf("%s: re-run downloaded %d message bodies of %d; want none", c.name, sum.downloaded, sum.fetched)
	}
	b.logf("%s: %v", c.name, m)
	re = row{m: m, messages: b.corpus.messages}
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
}

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

// flushDisk writes out what the last run left in the page cache, so that
// the write-back does not land in the next run's time.
func flushDisk() { syscall.Sync() }
