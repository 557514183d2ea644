package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/pgtest"
)

// fleetCmd is `bench fleet`, issue 12's benchmark: many small inboxes on
// one Dovecot, each round on a cold server and into a new database, copied
// either by a shell loop of single runs, one inbox after another, or by
// `backfill enqueue` and worker processes until the queue is drained.
//
//	go run ./internal/cmd/bench fleet [-inboxes 200] [-messages 500] [-procs 1,2,4] [-concurrency 4] [-loop] [-link]
//
// With -link, every IMAP connection of every run and worker goes through
// one shaped proxy (the link profile of `bench`: a delay each way and a
// bandwidth cap per connection and for all together), as to a remote server.
type fleetCmd struct {
	inboxes, messages int
	seed              int64
	runs              int
	loop              bool
	fleets            []fleetSize
	workers           int // backfill's --workers; 0 leaves its default
	dropCache         bool
	timeout           time.Duration
	backfill          string
	out               string
	keep              bool
	shaped            bool          // -link: every connection through proxy
	delay             time.Duration // the proxy's latency each way
	link              link          // the proxy's caps

	stderr            io.Writer
	dir, logs         string
	bins              binaries
	srv               *dovecottest.Server
	cluster           *pgtest.Cluster
	dbs               databases
	mailboxes         []*mailbox
	corpus            corpus // every inbox's together
	dovecotPID, pgPID int
	proxy             *latencyProxy // with -link; nil on loopback
}

// fleetSize is one fleet configuration: how many worker processes, each
// running how many jobs at once.
type fleetSize struct{ procs, concurrency int }

func (s fleetSize) key() string { return fmt.Sprintf("p%dc%d", s.procs, s.concurrency) }

// fleetLoop is the key of the shell loop's rows.
const fleetLoop = "loop"

// fleetPoll is how often the queue is asked whether it is drained: the
// timing error of a fleet row.
const fleetPoll = 100 * time.Millisecond

// fleetStopCodes are a worker's exit codes after the SIGTERM that ends its
// round: 143 as the contract says, 0 or 130 from a worker that took it
// otherwise.
var fleetStopCodes = []int{0, 130, 143}

func (f *fleetCmd) Run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	f.stderr = stderr
	if err := f.parse(args, stderr); err != nil {
		return err
	}
	if f.dir, err = os.MkdirTemp("", "backfill-fleetbench-"); err != nil {
		return err
	}
	defer func() {
		if f.keep {
			f.logf("kept %s", f.dir)
			return
		}
		if rmErr := os.RemoveAll(f.dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", f.dir, rmErr))
		}
	}()
	f.logs = filepath.Join(f.dir, "logs")
	if err := os.Mkdir(f.logs, 0o755); err != nil {
		return err
	}
	if err := f.build(ctx); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.stopServers()) }()
	if err := f.startServers(ctx); err != nil {
		return err
	}
	rep, err := f.measure(ctx)
	if err != nil {
		return err
	}
	var section bytes.Buffer
	rep.write(&section)
	return publish(stdout, f.out, section.Bytes(), f.logf)
}

// parse reads the flags; BENCH_FLEET_* variables give their defaults, so
// that `BENCH_FLEET_MESSAGES=100 make bench-fleet` works.
func (f *fleetCmd) parse(args []string, stderr io.Writer) error {
	inboxes, err := envInt("BENCH_FLEET_INBOXES", 200)
	if err != nil {
		return err
	}
	messages, err := envInt("BENCH_FLEET_MESSAGES", 500)
	if err != nil {
		return err
	}
	runs, err := envInt("BENCH_FLEET_RUNS", 1)
	if err != nil {
		return err
	}
	concurrency, err := envInt("BENCH_FLEET_CONCURRENCY", 4)
	if err != nil {
		return err
	}
	procs := envString("BENCH_FLEET_PROCS", "1,2,4")
	fs := flag.NewFlagSet("bench fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.inboxes, "inboxes", inboxes, "inboxes, each a Dovecot user ($BENCH_FLEET_INBOXES)")
	fs.IntVar(&f.messages, "messages", messages, "messages in each inbox ($BENCH_FLEET_MESSAGES)")
	fs.Int64Var(&f.seed, "seed", 1, "corpus seed; inbox i is generated from seed+i")
	fs.IntVar(&f.runs, "runs", runs, "rounds of every configuration, each on a cold server; each row is the median ($BENCH_FLEET_RUNS)")
	fs.BoolVar(&f.loop, "loop", true, "also run the shell loop of single runs, one inbox after another")
	fs.StringVar(&procs, "procs", procs, "comma-separated `list` of worker process counts, each P or PxC (C: --concurrency); empty for none ($BENCH_FLEET_PROCS)")
	fs.IntVar(&concurrency, "concurrency", concurrency, "each worker's --concurrency where -procs gives none ($BENCH_FLEET_CONCURRENCY)")
	fs.IntVar(&f.workers, "workers", 0, "backfill's --workers (IMAP connections per run) for runs and jobs; 0 leaves its default")
	fs.BoolVar(&f.dropCache, "drop-caches", true, "drop the kernel's page cache before each cold run (root on Linux)")
	fs.DurationVar(&f.timeout, "timeout", time.Hour, "limit for each timed run")
	fs.StringVar(&f.backfill, "backfill", "", "backfill binary to measure (default: go build ./cmd/backfill)")
	fs.StringVar(&f.out, "out", "BENCHMARKS.md", "file the report is appended to; empty: print only")
	fs.BoolVar(&f.keep, "keep", false, "keep the temporary directory (logs) for a post-mortem")
	fs.BoolVar(&f.shaped, "link", false, "route every IMAP connection of every run and worker through one capped, delayed proxy (bench's link profile)")
	fs.DurationVar(&f.delay, "delay", 25*time.Millisecond, "with -link, the latency the proxy adds in each direction")
	perConn := fs.Float64("link-rate", 5, "with -link, the rate per connection and direction, MB/s")
	total := fs.Float64("link-total", 12.5, "with -link, the rate for all connections together, per direction, MB/s")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	case f.inboxes < 1 || f.messages < 1:
		return usageError{fmt.Errorf("-inboxes %d, -messages %d: want positive numbers", f.inboxes, f.messages)}
	case f.runs < 1:
		return usageError{fmt.Errorf("-runs %d: want at least one round", f.runs)}
	case f.workers < 0 || f.workers > 16:
		return usageError{fmt.Errorf("-workers %d: want 0 (the default) to 16", f.workers)}
	case f.delay <= 0:
		return usageError{fmt.Errorf("-delay %v: want a positive latency", f.delay)}
	case *perConn <= 0 || *total <= 0:
		return usageError{fmt.Errorf("-link-rate %v, -link-total %v: want positive rates", *perConn, *total)}
	}
	f.link = link{perConn: *perConn * 1e6, total: *total * 1e6}
	f.fleets = nil
	for _, entry := range splitList(procs) {
		p, c, hasC := strings.Cut(entry, "x")
		size := fleetSize{concurrency: concurrency}
		var errP, errC error
		size.procs, errP = strconv.Atoi(p)
		if hasC {
			size.concurrency, errC = strconv.Atoi(c)
		}
		if errP != nil || errC != nil || size.procs < 1 || size.procs > 16 || size.concurrency < 1 || size.concurrency > 64 {
			return usageError{fmt.Errorf("-procs %q: want entries P or PxC, P from 1 to 16, C from 1 to 64", procs)}
		}
		if !slices.Contains(f.fleets, size) {
			f.fleets = append(f.fleets, size)
		}
	}
	if !f.loop && len(f.fleets) == 0 {
		return usageError{errors.New("nothing to run: -loop=false and no -procs")}
	}
	return nil
}

func (f *fleetCmd) logf(format string, args ...any) {
	fmt.Fprintf(f.stderr, "bench fleet: "+format+"\n", args...)
}

// build builds the launcher and, without -backfill, backfill.
func (f *fleetCmd) build(ctx context.Context) error {
	f.bins = binaries{backfill: f.backfill, launcher: filepath.Join(f.dir, "launcher")}
	targets := [][2]string{{f.bins.launcher, "./internal/cmd/bench/launcher"}}
	if f.bins.backfill == "" {
		f.bins.backfill = filepath.Join(f.dir, "backfill")
		targets = append(targets, [2]string{f.bins.backfill, "./cmd/backfill"})
	}
	for _, t := range targets {
		f.logf("building %s", t[1])
		cmd := exec.CommandContext(ctx, "go", "build", "-o", t[0], t[1])
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s (run from the repository root): %w\n%s", t[1], err, out)
		}
	}
	return nil
}

// inboxName is the backfill inbox of the i-th mailbox (from 1), user its
// Dovecot login.
func inboxName(i int) string { return "u" + strconv.Itoa(i) }

// startServers starts Dovecot with a user per inbox, writes every inbox's
// corpus once (kept pristine for the cold copies) and starts PostgreSQL.
func (f *fleetCmd) startServers(ctx context.Context) (err error) {
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var users []dovecottest.User
	for i := 1; i <= f.inboxes; i++ {
		mb := &mailbox{user: inboxName(i) + "@example.com", shape: shapes()[0]}
		f.mailboxes = append(f.mailboxes, mb)
		users = append(users, dovecottest.User{Name: mb.user, Password: benchPassword})
	}
	f.logf("starting Dovecot with %d users", f.inboxes)
	if f.srv, err = dovecottest.Start(startCtx, filepath.Join(f.dir, "dovecot"), users); err != nil {
		return err
	}
	f.logf("writing %d × %s generated messages into the Maildirs", f.inboxes, thousands(f.messages))
	start := time.Now()
	if err := os.Mkdir(filepath.Join(f.dir, "pristine"), 0o755); err != nil {
		return err
	}
	for i, mb := range f.mailboxes {
		if err := loadCorpus(ctx, f.srv, mb, f.seed+int64(i), f.messages, filepath.Join(f.dir, "pristine", inboxName(i+1))); err != nil {
			return err
		}
		f.corpus.messages += mb.corpus.messages
		f.corpus.distinct += mb.corpus.distinct
		f.corpus.bytes += mb.corpus.bytes
	}
	f.corpus.seed, f.corpus.loadTime = f.seed, time.Since(start)
	f.logf("%s messages, %.1f MB in %.1f s", thousands(f.corpus.messages), f.corpus.MB(), f.corpus.loadTime.Seconds())

	if f.shaped {
		// One proxy for every run and worker: they share its total cap, as
		// a fleet shares a machine's link to the provider.
		if f.proxy, err = startProxy(f.srv.Addr(), f.delay, f.link); err != nil {
			return fmt.Errorf("link proxy: %w", err)
		}
	}

	f.logf("starting PostgreSQL (fsync=off)")
	if f.cluster, err = pgtest.Start(startCtx, filepath.Join(f.dir, "pg")); err != nil {
		return err
	}
	f.dovecotPID = findMaster("-F", "-c", filepath.Join(f.dir, "dovecot", "dovecot.conf"))
	f.pgPID = findMaster("-D", filepath.Join(f.dir, "pg", "data"))
	f.dbs, err = newDatabases(f.cluster.DSN("postgres"))
	return err
}

func (f *fleetCmd) stopServers() error {
	var errs []error
	if f.proxy != nil {
		errs = append(errs, f.proxy.Close())
	}
	if f.cluster != nil {
		errs = append(errs, f.cluster.Stop())
	}
	if f.srv != nil {
		errs = append(errs, f.srv.Stop())
	}
	return errors.Join(errs...)
}

func (f *fleetCmd) serverTimes() serverTimes {
	return serverTimes{dovecot: serverCPU(f.dovecotPID), postgres: serverCPU(f.pgPID)}
}

// makeCold gives every inbox a fresh copy of its Maildir and a new index
// (see benchCmd.makeCold), then drops the page cache once.
func (f *fleetCmd) makeCold(ctx context.Context) (coldServer, error) {
	var cs coldServer
	start := time.Now()
	for _, mb := range f.mailboxes {
		if _, err := freshCopy(ctx, f.srv, mb); err != nil {
			return cs, err
		}
	}
	cs.index = time.Since(start)
	cs.dropped = errors.New("not asked to (-drop-caches=false)")
	if f.dropCache {
		cs.dropped = dropPageCache()
	}
	preloadFiles(f.bins.backfill, f.bins.launcher, "/bin/sh")
	return cs, nil
}

// configs are the keys of what each round runs, the loop first.
func (f *fleetCmd) configs() []string {
	var keys []string
	if f.loop {
		keys = append(keys, fleetLoop)
	}
	for _, s := range f.fleets {
		keys = append(keys, s.key())
	}
	return keys
}

// measure runs every configuration in rounds, each on a cold server and
// into a new database, and assembles the report.
func (f *fleetCmd) measure(ctx context.Context) (*fleetReport, error) {
	rep := &fleetReport{date: time.Now(), machine: describeMachine(f.dir), f: f}
	pgVersion, fsync, syncCommit, err := f.dbs.settings(ctx)
	if err != nil {
		return nil, err
	}
	rep.software = []string{runtime.Version()}
	if v := dovecotVersion(); v != "" {
		rep.software = append(rep.software, "Dovecot "+v)
	}
	rep.software = append(rep.software, "PostgreSQL "+pgVersion)
	if rev, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		rep.software = append(rep.software, "backfill at "+strings.TrimSpace(string(rev)))
	}
	rep.durability = fmt.Sprintf("PostgreSQL fsync=%s, synchronous_commit=%s; Dovecot mail_fsync=never", fsync, syncCommit)

	s := make(samples)
	keys := f.configs()
	for round := 1; round <= f.runs; round++ {
		k := (round - 1) % len(keys)
		for _, key := range slices.Concat(keys[k:], keys[:k]) {
			f.logf("round %d of %d: %s: making the server cold (load %.2f)", round, f.runs, key, loadAverage())
			cold, err := f.makeCold(ctx)
			if err != nil {
				return nil, err
			}
			rep.colds = append(rep.colds, cold)
			r, err := f.runOne(ctx, fmt.Sprintf("%s-r%d", key, round), key)
			if err != nil {
				return nil, err
			}
			flushDisk()
			s[key] = append(s[key], r)
		}
	}
	for _, key := range keys {
		r := s.median(key)
		r.state = "cold"
		rep.rows = append(rep.rows, r)
	}
	return rep, nil
}

// runOne migrates a new database, runs one configuration into it (timed),
// checks what it stored and drops the database.
func (f *fleetCmd) runOne(ctx context.Context, name, key string) (r row, err error) {
	db := strings.ReplaceAll("fleet_"+name, "-", "_")
	dsn, err := f.dbs.create(ctx, db)
	if err != nil {
		return r, err
	}
	defer func() {
		if ctx.Err() != nil {
			return // the whole cluster is about to be thrown away
		}
		err = errors.Join(err, f.dbs.drop(ctx, db))
	}()
	env := append(baseEnv(), "DATABASE_URL="+dsn)
	addr := f.srv.Addr()
	if f.proxy != nil {
		addr = f.proxy.Addr()
	}
	for _, mb := range f.mailboxes {
		name := strings.ToUpper(strings.TrimSuffix(mb.user, "@example.com"))
		env = append(env, "BACKFILL_INBOX_"+name+"="+endpoint{mb: mb, addr: addr}.url(),
			"BACKFILL_INBOX_"+name+"_PASSWORD="+benchPassword)
	}
	// Its own working directory, so that no .env of the repository is read.
	work := filepath.Join(f.dir, "work-"+name)
	if err := os.Mkdir(work, 0o755); err != nil {
		return r, err
	}
	c := child{name: "migrate-" + name, launcher: f.bins.launcher, path: f.bins.backfill, args: []string{"migrate"},
		env: env, dir: work, logDir: f.logs, timeout: 5 * time.Minute}
	if _, err := c.run(ctx); err != nil {
		return r, err
	}
	c.name, c.timeout = name, f.timeout

	var down int64
	if f.proxy != nil {
		down, _ = f.proxy.Carried()
	}
	if key == fleetLoop {
		r, err = f.runLoop(ctx, c)
	} else {
		i := slices.IndexFunc(f.fleets, func(s fleetSize) bool { return s.key() == key })
		r, err = f.runFleet(ctx, c, dsn, f.fleets[i])
	}
	if err != nil {
		return r, err
	}
	if f.proxy != nil {
		after, _ := f.proxy.Carried()
		r.received = after - down
	}
	check, err := f.verify(ctx, dsn, key != fleetLoop)
	if err != nil {
		return r, fmt.Errorf("%s: %w", name, err)
	}
	r.note = strings.Join(slices.DeleteFunc([]string{r.note, check}, func(s string) bool { return s == "" }), "; ")
	f.logf("%s: %.2f s, %.1f inboxes/min, %.0f msgs/s, peak RSS %.0f MB; %s", name, r.m.elapsed.Seconds(),
		float64(f.inboxes)*60/r.m.elapsed.Seconds(), float64(r.messages)/r.m.elapsed.Seconds(), float64(r.m.maxRSS)/1e6, r.note)
	return r, f.dbs.settle(ctx)
}

// runFlags are the flags every run and worker gets.
func (f *fleetCmd) runFlags() []string {
	if f.workers == 0 {
		return nil
	}
	return []string{"--workers", strconv.Itoa(f.workers)}
}

// loopScript is the shell loop: what a deploy script without a queue does.
const loopScript = `set -e
bin=$1
shift
for inbox do
	"$bin" --inbox "$inbox" ` + "$BENCH_FLEET_FLAGS" + `
done`

// runLoop runs every inbox's backfill one after another from one shell,
// measured as one child: the shell's rusage folds in its children's, so
// peak RSS is the largest single run's and CPU all of theirs.
func (f *fleetCmd) runLoop(ctx context.Context, c child) (row, error) {
	c.path = "/bin/sh"
	c.args = []string{"-c", loopScript, "sh", f.bins.backfill}
	for i := range f.mailboxes {
		c.args = append(c.args, inboxName(i+1))
	}
	c.env = append(slices.Clone(c.env), "BENCH_FLEET_FLAGS="+strings.Join(f.runFlags(), " "))
	load, servers := loadAverage(), f.serverTimes()
	m, err := c.run(ctx)
	if err != nil {
		return row{}, err
	}
	sums := summaryRE.FindAll(m.stdout, -1)
	if len(sums) != f.inboxes {
		return row{}, fmt.Errorf("%s: %d closing blocks in the loop's output; want %d", c.name, len(sums), f.inboxes)
	}
	return row{
		run: fmt.Sprintf("shell loop: %d × `backfill --inbox uN`, one after another", f.inboxes),
		m:   m, messages: f.corpus.messages, bytes: f.corpus.bytes, received: -1, load: load,
		servers: servers.until(f.serverTimes()),
	}, nil
}

// summaryRE finds each run's closing block in the loop's output.
var summaryRE = summaryFields[1].re

// runFleet enqueues every inbox, starts the worker processes and waits
// until the queue is drained; the time runs from enqueue's start to the
// first look that finds it drained. Then each worker gets SIGTERM (untimed).
func (f *fleetCmd) runFleet(ctx context.Context, c child, dsn string, size fleetSize) (row, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	load, servers := loadAverage(), f.serverTimes()
	start := time.Now()

	enq := c
	enq.name = c.name + "-enqueue"
	enq.args = []string{"enqueue"}
	for i := range f.mailboxes {
		enq.args = append(enq.args, "--inbox", inboxName(i+1))
	}
	em, err := enq.run(ctx)
	if err != nil {
		return row{}, err
	}
	if n := bytes.Count(em.stdout, []byte("queued ")); n != f.inboxes {
		return row{}, fmt.Errorf("%s: %d jobs queued; want %d\n%s", enq.name, n, f.inboxes, tail(em.stdout, nil, 1500))
	}

	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	type result struct {
		m   measurement
		err error
	}
	results := make([]chan result, size.procs)
	var exited atomic.Int32
	for i := range size.procs {
		w := c
		w.name = fmt.Sprintf("%s-worker%d", c.name, i+1)
		w.args = append([]string{"worker", "--concurrency", strconv.Itoa(size.concurrency)}, f.runFlags()...)
		s, err := w.start(stopCtx)
		if err != nil {
			stop()
			return row{}, err
		}
		results[i] = make(chan result, 1)
		go func() {
			m, err := s.wait(fleetStopCodes)
			exited.Add(1)
			results[i] <- result{m, err}
		}()
	}
	elapsed, drainErr := f.waitDrained(ctx, dsn, start, &exited)
	stop()
	r := row{
		run: fmt.Sprintf("`backfill enqueue`, then %d × `backfill worker --concurrency %d`", size.procs, size.concurrency),
		m:   measurement{elapsed: elapsed, maxRSS: em.maxRSS, cpu: em.cpu, user: em.user}, messages: f.corpus.messages,
		bytes: f.corpus.bytes, received: -1, load: load,
	}
	var errs []error
	var rss []string
	for _, ch := range results {
		res := <-ch
		if res.err != nil {
			errs = append(errs, res.err)
			continue
		}
		r.m.maxRSS = max(r.m.maxRSS, res.m.maxRSS)
		r.m.cpu += res.m.cpu
		r.m.user += res.m.user
		rss = append(rss, fmt.Sprintf("%.0f", float64(res.m.maxRSS)/1e6))
	}
	r.servers = servers.until(f.serverTimes())
	if err := errors.Join(append([]error{drainErr}, errs...)...); err != nil {
		return r, err
	}
	if size.procs > 1 {
		r.note = "peak RSS of each worker: " + strings.Join(rss, ", ") + " MB"
	}
	return r, nil
}

// waitDrained polls the queue until every job has finished, as the
// contract's completion check says, and returns the time since start. A
// worker that exits before is an error.
func (f *fleetCmd) waitDrained(ctx context.Context, dsn string, start time.Time, exited *atomic.Int32) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, fmt.Errorf("watch the queue: %w", err)
	}
	defer conn.Close(context.Background())
	tick := time.NewTicker(fleetPoll)
	defer tick.Stop()
	for {
		var open, all int
		err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state NOT IN ('completed','cancelled','discarded')), count(*)
			FROM river_job WHERE kind = 'backfill_folder'`).Scan(&open, &all)
		switch {
		case err != nil:
			return 0, fmt.Errorf("watch the queue: %w", err)
		case open == 0 && all > 0:
			return time.Since(start), nil
		case exited.Load() > 0:
			return 0, fmt.Errorf("a worker exited with %d of %d jobs still open", open, all)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("queue not drained (%d of %d jobs open): %w", open, all, ctx.Err())
		case <-tick.C:
		}
	}
}

// verify checks what a run stored: every inbox's every message, each once;
// with jobs, that every job completed. It returns a note for the table.
func (f *fleetCmd) verify(ctx context.Context, dsn string, jobs bool) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("verify: %w", err)
	}
	defer conn.Close(context.Background())
	var rows, uids, ids int
	err = conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT (inbox, imap_uidvalidity, imap_uid)),
			count(DISTINCT (inbox, message_id))
		FROM email_messages`).Scan(&rows, &uids, &ids)
	if err != nil {
		return "", fmt.Errorf("verify: %w", err)
	}
	if rows != f.corpus.distinct || uids != rows || ids != rows {
		return "", fmt.Errorf("verify: %d rows, %d distinct UIDs, %d distinct Message-IDs; want %d (%d messages less %d repeated deliveries)",
			rows, uids, ids, f.corpus.distinct, f.corpus.messages, f.corpus.messages-f.corpus.distinct)
	}
	q, err := conn.Query(ctx, `SELECT inbox, count(*) FROM email_messages GROUP BY inbox`)
	if err != nil {
		return "", fmt.Errorf("verify: %w", err)
	}
	stored := make(map[string]int)
	var inbox string
	var n int
	if _, err := pgx.ForEachRow(q, []any{&inbox, &n}, func() error { stored[inbox] = n; return nil }); err != nil {
		return "", fmt.Errorf("verify: %w", err)
	}
	for i, mb := range f.mailboxes {
		if n := stored[inboxName(i+1)]; n != mb.corpus.distinct {
			return "", fmt.Errorf("verify: inbox %s has %d rows; want %d", inboxName(i+1), n, mb.corpus.distinct)
		}
	}
	note := fmt.Sprintf("checked: %s rows, each message once", thousands(rows))
	if !jobs {
		return note, nil
	}
	var completed, other, maxAttempt int
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE state <> 'completed'),
			coalesce(max(attempt), 0)
		FROM river_job WHERE kind = 'backfill_folder'`).Scan(&completed, &other, &maxAttempt)
	if err != nil {
		return "", fmt.Errorf("verify jobs: %w", err)
	}
	if completed != f.inboxes || other != 0 {
		return "", fmt.Errorf("verify jobs: %d completed, %d in other states; want %d completed", completed, other, f.inboxes)
	}
	return fmt.Sprintf("%s, %d jobs completed (most attempts: %d)", note, completed, maxAttempt), nil
}

// fleetReport is what `bench fleet` prints and appends.
type fleetReport struct {
	f          *fleetCmd
	date       time.Time
	machine    machine
	software   []string
	durability string
	colds      []coldServer
	rows       []row
}

// write prints the report as a markdown section ready for BENCHMARKS.md.
func (r *fleetReport) write(w io.Writer) {
	f := r.f
	state := "cold server"
	var dropErr error
	var slowest time.Duration
	for _, c := range r.colds {
		if c.dropped != nil {
			dropErr = c.dropped
		}
		slowest = max(slowest, c.index)
	}
	cache := "then the kernel's page cache dropped once (`sync; echo 3 > /proc/sys/vm/drop_caches`), so message files are read from disk; backfill's binary and Dovecot's are read back in first"
	if dropErr != nil {
		state = "cold Dovecot, page cache kept"
		cache = fmt.Sprintf("the kernel's page cache could **not** be dropped (%v): message files may be read from memory", dropErr)
	}
	if f.shaped {
		state += ", over the capped, delayed link"
	}
	fmt.Fprintf(w, "## %s: a fleet of workers, %d inboxes × %s messages (%.1f MB), %s\n\n", r.date.UTC().Format("2006-01-02 15:04 MST"),
		f.inboxes, thousands(f.messages), f.corpus.MB(), state)
	fmt.Fprintf(w, "- Machine: %s; %s; %d cores; %s RAM; temporary files on %s\n",
		r.machine.uname, r.machine.cpu, r.machine.cores, r.machine.memory, r.machine.disk)
	fmt.Fprintf(w, "- Software: %s\n", strings.Join(r.software, "; "))
	fmt.Fprintf(w, "- Corpus: %d Dovecot users (one private instance), each an inbox of %s messages generated from its own seed (%s): %s messages, %.1f MB in all\n",
		f.inboxes, thousands(f.messages), shapes()[0].desc, thousands(f.corpus.messages), f.corpus.MB())
	fmt.Fprintf(w, "- Durability: %s\n", r.durability)
	fmt.Fprintf(w, "- Cold server, before every timed run: every inbox's Maildir replaced by a fresh copy of its files (Dovecot's index, UID list and field cache gone), one untimed EXAMINE per inbox builds the new index without caching any message field (resetting and indexing all %d took up to %s); %s\n",
		f.inboxes, seconds(slowest), cache)
	where := "everything on 127.0.0.1 (no link shaping)"
	if f.shaped {
		where = fmt.Sprintf("every IMAP connection of every run and worker through one TCP proxy in the bench process (the link profile): %v each way (%v round trip), %.1f MB/s per connection and direction, %.1f MB/s in all, shared by every connection; PostgreSQL on 127.0.0.1",
			f.delay, 2*f.delay, f.link.perConn/1e6, f.link.total/1e6)
	}
	fmt.Fprintf(w, "- Each timed run into a new database, `backfill migrate` first (untimed); %s; backfill's default flags%s\n", where, f.flagsNote())
	fmt.Fprintf(w, "- Shell loop: `for inbox do backfill --inbox \"$inbox\"; done` in one `sh`, timed from its start to its exit; peak RSS is the largest single run's, CPU all runs'\n")
	fmt.Fprintf(w, "- Fleet: `backfill enqueue --inbox u1 ... --inbox u%d`, then P `backfill worker` processes started at once; timed from enqueue's start until the queue is drained (no job of kind backfill_folder left outside completed/cancelled/discarded; looked at every %v), then SIGTERM (untimed); CPU is enqueue's and every worker's, peak RSS the largest worker's\n",
		f.inboxes, fleetPoll)
	fmt.Fprintf(w, "- Checked after every run: %s rows, one per message of every inbox (each inbox's count, and distinct by UID and by Message-ID; mailgen repeats %s deliveries byte for byte, kept once), and for the fleet every job completed\n",
		thousands(f.corpus.distinct), thousands(f.corpus.messages-f.corpus.distinct))
	fmt.Fprintf(w, "- Each row is the median of %d round(s) by wall time, with the largest peak RSS; rounds rotate the order. Load: the 1-minute load average when the run started (2 cores shared with other work)\n\n", f.runs)

	fmt.Fprintln(w, "| run | server | seconds | inboxes/min | msgs/s | MB/s | peak RSS MB per process | CPU s | Dovecot CPU s | PostgreSQL CPU s | ×loop time | load | notes |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	var loop *row
	if len(r.rows) > 0 && f.loop {
		loop = &r.rows[0]
	}
	for _, x := range r.rows {
		secs := x.m.elapsed.Seconds()
		load := "–"
		if x.load >= 0 {
			load = fmt.Sprintf("%.2f", x.load)
		}
		fmt.Fprintf(w, "| %s | %s | %.1f | %.1f | %.0f | %.1f | %.0f | %.1f | %s | %s | %s | %s | %s |\n",
			x.run, x.state, secs, float64(f.inboxes)*60/secs, float64(x.messages)/secs, float64(x.bytes)/1e6/secs,
			float64(x.m.maxRSS)/1e6, x.m.cpu.Seconds(), cpuSeconds(x.servers.dovecot), cpuSeconds(x.servers.postgres),
			ratio(x, loop), load, x.receivedNote())
	}
	fmt.Fprintln(w)
}

// flagsNote says which of backfill's defaults the runs changed.
func (f *fleetCmd) flagsNote() string {
	if f.workers == 0 {
		return " (`--workers 4` per run or job)"
	}
	return fmt.Sprintf(" but `--workers %d` for every run and worker", f.workers)
}

// receivedNote is a row's note, with the bytes the link proxy carried
// towards the client when there was one.
func (x row) receivedNote() string {
	if x.received < 0 {
		return x.note
	}
	return fmt.Sprintf("%.1f MB through the link; %s", float64(x.received)/1e6, x.note)
}
