// Command bench measures backfill against the tools it is judged by, on one
// machine, in one run: a raw IMAP fetch (the floor no client can beat),
// mbsync into a Maildir, and backfill into an empty database with --workers
// 1, 2, 4 and 8, --fetch full, a re-run and a run on a warm server. Each
// timed run starts on a cold server: a fresh copy of the Maildir, a new
// Dovecot index, and the page cache dropped (see makeCold). It does so for
// two corpus shapes (mailgen's mix, and attachment-heavy), on loopback and
// through a proxy that shapes a provider's link (delay, per-connection and
// total bandwidth caps), and reports time, bytes received, peak RSS and the
// CPU time of the client and of the servers. It prints markdown tables and
// appends them, with a description of the machine, to BENCHMARKS.md. `make
// bench` runs it.
//
//	go run ./internal/cmd/bench [-n 10000] [-link-n 2000] [-workers 1,2,4,8] [-backfill bin/backfill] [-only lean4,full4] [-alt other/backfill]
//
// `bench fleet` (`make bench-fleet`) is issue 12's benchmark instead: many
// inboxes of one Dovecot copied by a shell loop of single runs and by
// `backfill enqueue` with 1, 2 and 4 `backfill worker` processes (see
// fleetCmd):
//
//	go run ./internal/cmd/bench fleet [-inboxes 200] [-messages 500] [-procs 1,2,4] [-concurrency 4] [-loop=false]
//
// Run it from the repository root: it builds ./cmd/backfill and its two
// helpers, ./internal/cmd/bench/floor (the raw fetch, and the size and
// structure probes) and ./internal/cmd/bench/launcher (which measures each
// contender; see there why the benchmark cannot do that itself). Everything
// listens on 127.0.0.1 and lives in a temporary directory that is removed at
// the end, however the run ends. It needs root (for Dovecot and to drop the
// page cache), Dovecot 2.3, PostgreSQL's programs and mbsync:
// scripts/deps.sh installs them.
//
// Benchmarks report; they never fail on a slow result. Exit code 0 means every
// contender ran and moved every message, 1 that something failed, 2 bad usage,
// 130 an interrupt.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Not stopped before cleanup ends: a second Ctrl-C must not cut short the
	// shutdown of Dovecot and PostgreSQL.
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var err error
	if len(args) > 0 && args[0] == "fleet" {
		err = (&fleetCmd{}).Run(ctx, args[1:], stdout, stderr)
	} else {
		err = (&benchCmd{}).Run(ctx, args, stdout, stderr)
	}
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &usage):
		fmt.Fprintln(stderr, "bench:", err)
		return exitUsage
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "bench: interrupted:", err)
		return exitInterrupted
	default:
		fmt.Fprintln(stderr, "bench:", err)
		return exitFailed
	}
}

// usageError is a mistake on the command line or in BENCH_* variables.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }
