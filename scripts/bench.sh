#!/usr/bin/env bash
# make bench: backfill against the raw-fetch floor and mbsync on generated
# corpora, side by side on this machine, every timed run on a cold server;
# prints the tables and appends them to BENCHMARKS.md. Installs what is
# missing (PostgreSQL's programs, Dovecot, mbsync) first; starts every server
# itself on 127.0.0.1 and stops it again. Takes about half an hour on 2 cores.
#
# Usage: scripts/bench.sh [flags of internal/cmd/bench, e.g. -keep, -only]
#   BENCH_N=50000          loopback corpus size (default 10000; 50,000 needs ~8 GB in /tmp)
#   BENCH_LINK_N=3000      corpus size through the capped link (default 2000)
#   BENCH_WORKERS=1,2,4,8  --workers values run in every profile
#   BENCH_SHAPES=mixed     corpus shapes: mixed, attachments (default both)
#   BENCH_PROFILES=link    profiles: loopback, link (default both)
#   BENCH_RUNS=3           rounds; each row is the median
#
# scripts/bench.sh fleet [flags] is issue 12's fleet benchmark instead
# (make bench-fleet): BENCH_FLEET_INBOXES=200, BENCH_FLEET_MESSAGES=500,
# BENCH_FLEET_PROCS=1,2,4, BENCH_FLEET_CONCURRENCY=4, BENCH_FLEET_RUNS=1.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian keeps dovecot in /usr/sbin, outside the PATH of some shells.
export PATH="$PATH:/usr/sbin:/sbin"

((EUID == 0)) || { echo "bench.sh: Dovecot's privilege separation needs root; run as root" >&2; exit 2; }
./scripts/deps.sh postgresql dovecot isync

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/bench" ./internal/cmd/bench
# Not exec: the trap above removes the binary once the benchmark is done.
"$bin/bench" "$@"
