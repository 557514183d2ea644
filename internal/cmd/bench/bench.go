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
	"time"

	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/pgtest"
)

// The mailboxes' password never leaves this machine: everything listens on
// 127.0.0.1.
const (
	benchPassword = "bench-password"
	benchInbox    = "bench" // backfill's --inbox name
	// defaultWorkers is backfill's own default; its run is the one compared
	// with mbsync and followed by the re-run.
	defaultWorkers = 4
)

// benchCmd is the benchmark itself: flags, and the state of one run.
type benchCmd struct {
	n         int // messages on loopback
	linkN     int // messages through the capped link
	seed      int64
	runs      int
	workers   []int
	shapes    []shape
	profiles  []string // "loopback", "link"
	delay     time.Duration
	link      link
	durable   bool
	timeout   time.Duration
	backfill  string
	out       string
	keep      bool
	dropCache bool
	probes    bool
	only      []string // contender keys to run; all when empty
	alt       string   // another backfill binary, run as contender alt4

	dovecotPID, pgPID int // the servers' master processes, whose CPU time is read

	stderr    io.Writer
	dir       string // the run's temporary directory
	logs      string // children's output, kept there
	bins      binaries
	srv       *dovecottest.Server
	cluster   *pgtest.Cluster
	dbs       databases           // on cluster: fsync=off
	durDB     *durableServer      // with -durable: fsync=on
	mailboxes map[string]*mailbox // by profile and shape: mailboxKey
	isync     isync
}

// The profiles: where the contenders reach Dovecot.
const (
	profileLoopback = "loopback" // straight to 127.0.0.1
	profileLink     = "link"     // through the capped, delayed proxy
)

// mailboxKey names the mailbox of a profile and shape.
func mailboxKey(profile, shape string) string { return profile + "/" + shape }

func (b *benchCmd) Run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	b.stderr = stderr
	if err := b.parse(args, stderr); err != nil {
		return err
	}
	if b.isync, err = findIsync(); err != nil {
		return err
	}
	if b.dir, err = os.MkdirTemp("", "backfill-bench-"); err != nil {
		return err
	}
	defer func() {
		if b.keep {
			b.logf("kept %s", b.dir)
			return
		}
		if rmErr := os.RemoveAll(b.dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", b.dir, rmErr))
		}
	}()
	b.logs = filepath.Join(b.dir, "logs")
	if err := os.Mkdir(b.logs, 0o755); err != nil {
		return err
	}
	if b.bins, err = b.build(ctx); err != nil {
		return err
	}

	defer func() { err = errors.Join(err, b.stopServers()) }()
	if err := b.startServers(ctx); err != nil {
		return err
	}

	rep, err := b.measure(ctx)
	if err != nil {
		return err
	}
	var section bytes.Buffer
	if err := rep.write(&section); err != nil {
		return err
	}
	return publish(stdout, b.out, section.Bytes(), b.logf)
}

// parseFlags parses args into fs; a bad flag is a usageError, -help is
// flag.ErrHelp as it is.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

// parse reads the flags. BENCH_N, BENCH_LINK_N, BENCH_RUNS, BENCH_WORKERS,
// BENCH_SHAPES, BENCH_PROFILES and BENCH_DURABLE give their defaults, so
// that `BENCH_N=50000 make bench` works.
func (b *benchCmd) parse(args []string, stderr io.Writer) error {
	n, err := envInt("BENCH_N", 10000)
	if err != nil {
		return err
	}
	linkN, err := envInt("BENCH_LINK_N", 2000)
	if err != nil {
		return err
	}
	runs, err := envInt("BENCH_RUNS", 3)
	if err != nil {
		return err
	}
	workers := envString("BENCH_WORKERS", "1,2,4,8")
	shapeList := envString("BENCH_SHAPES", "mixed,attachments")
	profileList := envString("BENCH_PROFILES", profileLoopback+","+profileLink)
	durable := false
	if v := os.Getenv("BENCH_DURABLE"); v != "" {
		if durable, err = strconv.ParseBool(v); err != nil {
			return usageError{fmt.Errorf("BENCH_DURABLE=%q: want 1 or 0", v)}
		}
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&b.n, "n", n, "messages in each loopback corpus ($BENCH_N)")
	fs.IntVar(&b.linkN, "link-n", linkN, "messages in each corpus copied through the capped link ($BENCH_LINK_N)")
	fs.Int64Var(&b.seed, "seed", 1, "corpus seed: the same seed, shape and size give the same bytes")
	fs.IntVar(&b.runs, "runs", runs, "rounds of every measurement, each on a cold server; each row is the median ($BENCH_RUNS)")
	fs.StringVar(&workers, "workers", workers, "comma-separated `list` of --workers values, each run in every profile ($BENCH_WORKERS)")
	fs.StringVar(&shapeList, "shapes", shapeList, "comma-separated `list` of corpus shapes: mixed, attachments ($BENCH_SHAPES)")
	fs.StringVar(&profileList, "profiles", profileList, "comma-separated `list` of profiles: loopback, link ($BENCH_PROFILES)")
	fs.DurationVar(&b.delay, "delay", 25*time.Millisecond, "latency the proxies add in each direction")
	perConn := fs.Float64("link-rate", 5, "the capped link's rate per connection and direction, MB/s")
	total := fs.Float64("link-total", 12.5, "the capped link's rate for all connections together, per direction, MB/s")
	fs.BoolVar(&b.dropCache, "drop-caches", true, "drop the kernel's page cache before each cold run (root on Linux)")
	fs.BoolVar(&b.probes, "probes", true, "on loopback, also time the server's answer to size and structure fetches")
	fs.StringVar(&b.alt, "alt", "", "another backfill `binary` (an experiment) to run as contender alt4: lean, --workers 4, beside the measured one")
	only := fs.String("only", "", "comma-separated `list` of contenders to run (floor, mbsync, lean4, full4, probe-structure, ...), for experiments; all when empty")
	fs.BoolVar(&b.durable, "durable", durable, "also compare durable with durable: mbsync `FSync yes` against PostgreSQL with fsync on ($BENCH_DURABLE)")
	fs.DurationVar(&b.timeout, "timeout", 10*time.Minute, "limit for each measured program")
	fs.StringVar(&b.backfill, "backfill", "", "backfill binary to measure (default: go build ./cmd/backfill)")
	fs.StringVar(&b.out, "out", "BENCHMARKS.md", "file the report is appended to")
	fs.BoolVar(&b.keep, "keep", false, "keep the temporary directory (logs, mbsyncrc) for a post-mortem")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	case b.n < 1:
		return usageError{fmt.Errorf("-n %d: want a positive number of messages", b.n)}
	case b.runs < 1:
		return usageError{fmt.Errorf("-runs %d: want at least one round", b.runs)}
	case b.delay <= 0:
		return usageError{fmt.Errorf("-delay %v: want a positive latency", b.delay)}
	case b.linkN < 1:
		return usageError{fmt.Errorf("-link-n %d: want a positive number of messages", b.linkN)}
	case *perConn <= 0 || *total <= 0:
		return usageError{fmt.Errorf("-link-rate %v, -link-total %v: want positive rates", *perConn, *total)}
	}
	b.link = link{perConn: *perConn * 1e6, total: *total * 1e6}
	b.only = splitList(*only)
	b.shapes = nil
	for _, name := range splitList(shapeList) {
		i := slices.IndexFunc(shapes(), func(s shape) bool { return s.name == name })
		if i < 0 {
			return usageError{fmt.Errorf("-shapes %q: want mixed and/or attachments", shapeList)}
		}
		b.shapes = append(b.shapes, shapes()[i])
	}
	b.profiles = nil
	for _, p := range splitList(profileList) {
		if p != profileLoopback && p != profileLink {
			return usageError{fmt.Errorf("-profiles %q: want loopback and/or link", profileList)}
		}
		b.profiles = append(b.profiles, p)
	}
	if len(b.shapes) == 0 || len(b.profiles) == 0 {
		return usageError{errors.New("want at least one shape and one profile")}
	}
	b.workers = nil
	for _, f := range splitList(workers) {
		w, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || w < 1 || w > 16 {
			return usageError{fmt.Errorf("-workers %q: want numbers from 1 to 16 (Dovecot allows 20 sessions)", workers)}
		}
		if !slices.Contains(b.workers, w) {
			b.workers = append(b.workers, w)
		}
	}
	// backfill's default goes first: the headline run, followed by the
	// re-run, is then the least disturbed by what ran before.
	slices.SortStableFunc(b.workers, func(x, y int) int {
		if x == defaultWorkers || y == defaultWorkers {
			return boolInt(y == defaultWorkers) - boolInt(x == defaultWorkers)
		}
		return x - y
	})
	return nil
}

// envString reads a variable, def when unset.
func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// splitList splits a comma-separated list, without duplicates.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// envInt reads a positive number from the environment, def when unset.
func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil || n < 1 {
		return 0, usageError{fmt.Errorf("%s=%q: want a positive number", name, v)}
	}
	return n, nil
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

func (b *benchCmd) logf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "bench: "+format+"\n", args...)
}

// binaries are the programs the benchmark runs besides the servers.
type binaries struct {
	backfill string // measured
	floor    string // measured: ./internal/cmd/bench/floor
	launcher string // measures the others: ./internal/cmd/bench/launcher
}

// build builds the programs of the working tree into the run's directory;
// backfill only when no -backfill binary was given.
func (b *benchCmd) build(ctx context.Context) (binaries, error) {
	bins := binaries{
		backfill: b.backfill,
		floor:    filepath.Join(b.dir, "floor"),
		launcher: filepath.Join(b.dir, "launcher"),
	}
	type target struct{ bin, pkg string }
	targets := []target{{bins.launcher, "./internal/cmd/bench/launcher"}, {bins.floor, "./internal/cmd/bench/floor"}}
	if bins.backfill == "" {
		bins.backfill = filepath.Join(b.dir, "backfill")
		targets = append(targets, target{bins.backfill, "./cmd/backfill"})
	}
	for _, t := range targets {
		b.logf("building %s", t.pkg)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", t.bin, t.pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return bins, fmt.Errorf("go build %s (run from the repository root): %w\n%s", t.pkg, err, out)
		}
	}
	return bins, nil
}

// startServers starts Dovecot with the corpus and PostgreSQL (two clusters
// with -durable). stopServers stops whatever started, even after an error.
func (b *benchCmd) startServers(ctx context.Context) (err error) {
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	b.mailboxes = make(map[string]*mailbox)
	var users []dovecottest.User
	var order []string
	for _, p := range b.profiles {
		for _, sh := range b.shapes {
			key := mailboxKey(p, sh.name)
			mb := &mailbox{user: fmt.Sprintf("%s-%s@example.com", p, sh.name), shape: sh}
			b.mailboxes[key] = mb
			users = append(users, dovecottest.User{Name: mb.user, Password: benchPassword})
			order = append(order, key)
		}
	}
	b.logf("starting Dovecot")
	b.srv, err = dovecottest.Start(startCtx, filepath.Join(b.dir, "dovecot"), users)
	if err != nil {
		return err
	}
	for _, key := range order {
		mb := b.mailboxes[key]
		n := b.n
		if strings.HasPrefix(key, profileLink+"/") {
			n = b.linkN
		}
		b.logf("%s: writing %s generated messages into the Maildir", key, thousands(n))
		if err := loadCorpus(ctx, b.srv, mb, b.seed, n, filepath.Join(b.dir, "pristine-"+strings.ReplaceAll(key, "/", "-"))); err != nil {
			return err
		}
		b.logf("%s: %.1f MB in %.1f s", key, mb.corpus.MB(), mb.corpus.loadTime.Seconds())
	}

	b.logf("starting PostgreSQL (fsync=off)")
	if b.cluster, err = pgtest.Start(startCtx, filepath.Join(b.dir, "pg")); err != nil {
		return err
	}
	b.dovecotPID = findMaster("-F", "-c", filepath.Join(b.dir, "dovecot", "dovecot.conf"))
	b.pgPID = findMaster("-D", filepath.Join(b.dir, "pg", "data"))
	if b.dovecotPID == 0 || b.pgPID == 0 {
		b.logf("servers' processes not found (Dovecot %d, PostgreSQL %d): their CPU is not reported", b.dovecotPID, b.pgPID)
	}
	if b.dbs, err = newDatabases(b.cluster.DSN("postgres")); err != nil {
		return err
	}
	if b.durable {
		b.logf("starting PostgreSQL (fsync=on) with scripts/pg.sh")
		if b.durDB, err = startDurable(startCtx, filepath.Join(b.dir, "pg-durable")); err != nil {
			return err
		}
	}
	return nil
}

func (b *benchCmd) stopServers() error {
	var errs []error
	if b.durDB != nil {
		errs = append(errs, b.durDB.stop())
	}
	if b.cluster != nil {
		errs = append(errs, b.cluster.Stop())
	}
	if b.srv != nil {
		errs = append(errs, b.srv.Stop())
	}
	return errors.Join(errs...)
}

// software lists the versions in the report.
func (b *benchCmd) software(pgVersion string) []string {
	out := []string{runtime.Version()}
	if v := dovecotVersion(); v != "" {
		out = append(out, "Dovecot "+v)
	}
	out = append(out, b.isync.version, "PostgreSQL "+pgVersion)
	if rev, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		out = append(out, "backfill at "+strings.TrimSpace(string(rev)))
	}
	return out
}

// dovecotVersion returns what dovecot --version prints, or "".
func dovecotVersion() string {
	path, err := exec.LookPath("dovecot")
	if err != nil {
		path = "/usr/sbin/dovecot" // outside the PATH of some shells
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
