package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/myhibachi/backfill/pipeline"
	"github.com/myhibachi/backfill/serve"
	"github.com/myhibachi/backfill/watch"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"
)

// watchSkips are the run flags that mean nothing to watch: it always syncs
// everything, for real, and reports events rather than batches.
var watchSkips = []string{"limit", "dry-run", "verbose", "cpuprofile"}

// withRunFlags adds to a command's own flags the run flags it shares, all
// but those in skip; a run flag the command defines itself is its own.
func withRunFlags(own []cli.Flag, skip []string) []cli.Flag {
	defined := map[string]bool{}
	for _, f := range own {
		defined[f.Names()[0]] = true
	}
	for _, f := range runFlags() {
		if name := f.Names()[0]; !defined[name] && !slices.Contains(skip, name) {
			own = append(own, f)
		}
	}
	return own
}

func (a *appEnv) watchCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringSliceFlag{Name: "inbox", Usage: "the `NAME` of an inbox to watch; repeat the flag to watch several"},
		&cli.StringFlag{Name: "flags", Value: "server", Usage: "`POLICY`: server (flag changes on the server overwrite is_read, is_starred, labels) or keep (never overwrite stored flags)"},
		&cli.StringFlag{Name: "listen", Usage: "`ADDR` (host:port) to serve, read-only, /healthz, /metrics and /api/v1/admin/emails/{inbox|stats} on"},
		&cli.DurationFlag{Name: "poll", Value: 60 * time.Second, Hidden: true, Usage: "how often to look for news on a server without IDLE, and to poll folders without a connection of their own"},
		&cli.DurationFlag{Name: "idle-refresh", Value: 25 * time.Minute, Hidden: true, Usage: "how long one IDLE lasts before it is renewed"},
		&cli.DurationFlag{Name: "max-backoff", Value: time.Minute, Hidden: true, Usage: "the longest wait between attempts after a failure"},
	}
	return &cli.Command{
		Name:      "watch",
		Usage:     "backfill, then keep the database current: new mail, flag changes and expunges, until stopped",
		UsageText: "backfill watch --inbox NAME [--inbox NAME ...] [--folders LIST | --all-folders] [--flags server|keep] [--listen ADDR]",
		Flags:     append(withRunFlags(flags, watchSkips), dbFlag()),
		Action:    a.runWatch,
	}
}

func (a *appEnv) runWatch(c *cli.Context) error {
	inboxes := c.StringSlice("inbox")
	if err := validateWatchFlags(c, inboxes); err != nil {
		return err
	}
	e, dbURL, err := a.envAndDatabase(c)
	if err != nil {
		return err
	}
	out := &watchLog{w: a.stdout, json: c.String("log-format") == "json"}
	opID := uuid.New()
	ctx := c.Context
	// The database is opened first: the inboxes may be registered in it.
	// Whether it can be written is said after the start line, as before.
	// At most this many connections: the run locks', the followers', and
	// each inbox's workers (a connection cap can only lower --workers).
	sink, sinkErr := pgsink.Open(ctx, dbURL, 4+len(inboxes)*(c.Int("workers")+2))
	defer func() {
		if sink != nil {
			sink.Close()
		}
	}()
	cfgs := make([]watch.Config, len(inboxes))
	for i, inbox := range inboxes {
		spec, err := a.resolveInboxSpec(ctx, poolOf(sink), e, inbox, c.Bool("allow-plaintext"))
		if err != nil {
			var unknown *unknownInboxError
			if errors.As(err, &unknown) && sinkErr != nil {
				return usageError("%v; the database, which may register it, could not be read: %v", err, sinkErr)
			}
			return err
		}
		imapCfg := spec.IMAP
		imapCfg.Silence = c.Duration("imap-timeout")
		folders, allFolders, err := runFolders(c, spec)
		if err != nil {
			return err
		}
		// watch.Run lowers it further if the folders it follows leave
		// too little room within the cap.
		workers := c.Int("workers")
		if limit := imapsrc.ConnectionCap(imapCfg.Host); limit > 0 && workers > limit {
			workers = limit
		}
		cfgs[i] = watch.Config{
			Run:         a.pipelineConfig(c, inbox, imapCfg, workers, opID),
			Folders:     folders,
			AllFolders:  allFolders,
			Poll:        c.Duration("poll"),
			IdleRefresh: c.Duration("idle-refresh"),
			MaxBackoff:  c.Duration("max-backoff"),
			Flags:       watch.FlagsServer,
		}
		if c.String("flags") == "keep" {
			cfgs[i].Flags = watch.FlagsKeep
		}
	}

	if os.Getenv("GOGC") == "" {
		// A watch idles most of the time: tuneGC's pacing for runs
		// (collect only near the 100 MiB limit) would keep 100 MB resident
		// for nothing. Go's default pacing, under the same limit, keeps a
		// follower's few MB small.
		debug.SetGCPercent(100)
	}
	out.emit("start", map[string]any{"inboxes": inboxes, "operation_id": opID, "version": currentVersion()},
		"🚀 Watching %s (operation %s)", strings.Join(inboxes, ", "), opID)
	err = sinkErr
	if err == nil {
		err = sink.CheckSchema(ctx)
	}
	if err != nil {
		out.emit("fatal", map[string]any{"error": err.Error()}, "❌ %v", err)
		return &shownError{&exitError{code: exitFatal, err: err}}
	}

	var metrics *serve.Metrics
	if addr := c.String("listen"); addr != "" {
		stop, m, err := listen(ctx, addr, dbURL)
		if err != nil {
			out.emit("fatal", map[string]any{"error": err.Error()}, "❌ %v", err)
			return &shownError{&exitError{code: exitFatal, err: err}}
		}
		defer stop()
		metrics = m
		out.emit("listening", map[string]any{"listen": addr},
			"🌐 Serving /healthz, /metrics and /api/v1/admin/emails on http://%s", addr)
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, cfg := range cfgs {
		ev := &watchEvents{log: out, inbox: cfg.Run.Inbox, metrics: metrics}
		if metrics != nil {
			inbox := cfg.Run.Inbox
			cfg.Observe = func(folder string, next pipeline.Observer) pipeline.Observer {
				return metrics.Observer(inbox, folder, next)
			}
		}
		g.Go(func() error { return watch.Run(gctx, cfg, sink, ev) })
	}
	err = g.Wait()
	if ctx.Err() != nil {
		out.emit("stopped", map[string]any{"reason": context.Cause(ctx).Error()},
			"⏹️  WATCH STOPPED (%v): what was in flight is committed", context.Cause(ctx))
		return &shownError{context.Cause(ctx)}
	}
	if err != nil {
		out.emit("fatal", map[string]any{"error": err.Error()}, "❌ %v", err)
		return &shownError{&exitError{code: exitFatal, err: err}}
	}
	return nil
}

// listen serves serve's endpoints on addr until stop is called. The
// handler reads through a pool of its own, so that /healthz never waits
// behind the watch's batches; health is every followed folder connected
// (and, checked by the handler, the database answering).
func listen(ctx context.Context, addr, dbURL string, extra ...prometheus.Collector) (stop func(), m *serve.Metrics, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, usageError("--listen %s: %v", addr, err)
	}
	pool, err := pgsink.Open(ctx, dbURL, 2)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	reg := prometheus.NewRegistry()
	m = serve.NewMetrics(reg)
	reg.MustRegister(extra...)
	srv := &http.Server{Handler: serve.NewHandler(pool.Pool(), m.Health, reg), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // http.ErrServerClosed once stopped
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // a request still open after 5 s is cut
		<-done
		pool.Close()
	}, m, nil
}

// validateWatchFlags checks watch's flags before anything connects.
func validateWatchFlags(c *cli.Context, inboxes []string) error {
	if c.Args().Present() {
		return usageError("unexpected argument %q (see backfill watch --help)", c.Args().First())
	}
	if len(inboxes) == 0 {
		return usageError("--inbox is required: backfill watch --inbox NAME (see `backfill inboxes`)")
	}
	for i, name := range inboxes {
		if err := checkInboxName(name); err != nil {
			return err
		}
		if slices.Contains(inboxes[:i], name) {
			return usageError("--inbox %s given twice", name)
		}
	}
	switch {
	case c.String("flags") != "server" && c.String("flags") != "keep":
		return usageError("--flags %q: want server or keep", c.String("flags"))
	case c.Duration("poll") <= 0 || c.Duration("idle-refresh") <= 0 || c.Duration("max-backoff") <= 0:
		return usageError("--poll, --idle-refresh and --max-backoff must be positive")
	}
	return validateFetchFlags(c)
}

// watchLog is watch's log stream: one line per event, text or a JSON
// object, whole lines even when several inboxes and folders report at
// once.
type watchLog struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

// emit writes one event: as a JSON object of fields with "event" and
// "time" added, or as the text format and args make.
func (l *watchLog) emit(event string, fields map[string]any, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.json {
		fmt.Fprintf(l.w, format+"\n", args...)
		return
	}
	fields["event"] = event
	fields["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	b, _ := json.Marshal(fields)
	fmt.Fprintf(l.w, "%s\n", b)
}

// watchEvents prints one inbox's watch.Events and, with --listen, keeps
// its metrics.
type watchEvents struct {
	log     *watchLog
	inbox   string
	metrics *serve.Metrics // nil without --listen
}

func (e *watchEvents) Starting(folder string) {
	if e.metrics != nil {
		e.metrics.SetConnected(e.inbox, folder, false, false)
	}
}

func (e *watchEvents) CaughtUp(folder string) {
	if e.metrics != nil {
		e.metrics.Synced(e.inbox, folder, time.Now())
	}
}

func (e *watchEvents) fields(folder string, kv ...any) map[string]any {
	m := map[string]any{"inbox": e.inbox, "folder": folder}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func (e *watchEvents) Backfilled(folder string, res pipeline.Result) {
	if e.metrics != nil {
		e.metrics.Downloaded(e.inbox, res.Transferred)
		e.metrics.Synced(e.inbox, folder, time.Now())
	}
	e.log.emit("backfilled", e.fields(folder, "created", res.Created, "skipped", res.Skipped, "failed", res.Failed,
		"elapsed_ms", res.Elapsed.Milliseconds()),
		"✅ %s/%s: backfilled: %d stored, %d already stored, %d failed (%s)",
		e.inbox, folder, res.Created, res.Skipped, res.Failed, res.Elapsed.Round(time.Millisecond))
}

func (e *watchEvents) Stored(folder string, res pipeline.Result) {
	if e.metrics != nil {
		e.metrics.Downloaded(e.inbox, res.Transferred)
	}
	f := e.fields(folder, "created", res.Created, "failed", res.Failed)
	if res.Failed > 0 {
		e.log.emit("stored", f, "📥 %s/%s: %d new stored, %d failed (see backfill errors)", e.inbox, folder, res.Created, res.Failed)
		return
	}
	e.log.emit("stored", f, "📥 %s/%s: %d new stored", e.inbox, folder, res.Created)
}

func (e *watchEvents) Following(folder string, how watch.How) {
	idle := how.Mode == watch.Own && how.Idle
	if e.metrics != nil {
		e.metrics.SetConnected(e.inbox, folder, idle, true)
	}
	e.log.emit("following", e.fields(folder, "idle", idle, "condstore", how.CondStore, "via", how.Via()),
		"👀 %s/%s: following (%s)", e.inbox, folder, how)
}

func (e *watchEvents) Lost(folder string) {
	if e.metrics != nil {
		e.metrics.SetConnected(e.inbox, folder, false, false)
	}
}

func (e *watchEvents) Changed(folder string, flags, deleted int) {
	if flags > 0 {
		e.log.emit("flags_updated", e.fields(folder, "count", flags),
			"🔄 %s/%s: flags of %d message%s updated", e.inbox, folder, flags, plural(flags))
	}
	if deleted > 0 {
		e.log.emit("marked_deleted", e.fields(folder, "count", deleted),
			"🗑️  %s/%s: %d message%s expunged on the server, marked deleted", e.inbox, folder, deleted, plural(deleted))
	}
}

func (e *watchEvents) Waiting(folder string, err error) {
	e.log.emit("waiting", e.fields(folder, "reason", err.Error()),
		"⏳ %s/%s: %v; waiting for it to finish", e.inbox, folder, err)
}

func (e *watchEvents) Failed(folder string, err error, wait time.Duration) {
	if e.metrics != nil {
		if folder != "" {
			e.metrics.SetConnected(e.inbox, folder, false, false)
		}
		e.metrics.Error(e.inbox, string(errlog.Classify(err)))
	}
	where := e.inbox + "/" + folder
	if folder == "" {
		where = e.inbox // listing the folders, before any is followed
	}
	e.log.emit("failed", e.fields(folder, "error", err.Error(), "retry_in_ms", wait.Milliseconds()),
		"⚠️  %s: %v; trying again in %s", where, err, wait.Round(time.Millisecond))
}

func (e *watchEvents) Note(text string) {
	e.log.emit("note", map[string]any{"inbox": e.inbox, "message": text}, "⚠️  %s: %s", e.inbox, text)
}

func (e *watchEvents) Connecting(imapsrc.Config)      {}
func (e *watchEvents) Listed(pipeline.Listing)        {}
func (e *watchEvents) BatchDone(pipeline.BatchReport) {}

func (e *watchEvents) Retrying(what string, err error, attempt int, wait time.Duration) {
	e.log.emit("retrying", map[string]any{"inbox": e.inbox, "what": what, "error": err.Error(), "attempt": attempt,
		"retry_in_ms": wait.Milliseconds()},
		"🔁 %s: %s failed (attempt %d): %v; retrying in %s", e.inbox, what, attempt, err, wait.Round(time.Millisecond))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
