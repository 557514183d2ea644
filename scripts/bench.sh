#!/usr/bin/env bash
# make bench: backfill against the raw-fetch floor and mbsync on a generated
# corpus, side by side on this machine; prints the table and appends it to
# BENCHMARKS.md. Installs what is missing (PostgreSQL's programs, Dovecot,
# mbsync) first; starts every server itself on 127.0.0.1 and stops it again.
#
# Usage: scripts/bench.sh [flags of internal/cmd/bench, e.g. -keep]
#   BENCH_N=50000       corpus size (default 10000; 50,000 needs ~2.4 GB in /tmp)
#   BENCH_WORKERS=1,4,8 --workers values run on loopback and through the proxy
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
