#!/usr/bin/env bash
# make demo: a throwaway PostgreSQL and a local IMAP server loaded with
# generated mail (threads, HTML, attachments, several charsets), then what a
# deployment script does: migrate, backfill, re-run, and a look at the tables.
# Binaries and logs live under .demo/; PostgreSQL's data lives in a fresh
# folder under /tmp, because the checkout may sit where the postgres user
# cannot enter (a clone in /root, mode 700). Both servers listen on
# 127.0.0.1 only, and are stopped and their data removed when the demo
# ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${DEMO_MESSAGES:-2000}
workers=${DEMO_WORKERS:-4}
demo=$PWD/.demo
mkdir -p "$demo/bin"

./scripts/deps.sh postgresql
echo "🔧 Building backfill and the demo IMAP server..."
go build -buildvcs=auto -o "$demo/bin/backfill" ./cmd/backfill
go build -o "$demo/bin/demoimap" ./internal/cmd/demoimap

imap_pid=""
pgdir=""
cleanup() {
  if [[ -n $imap_pid ]]; then
    kill "$imap_pid" 2>/dev/null || true
    wait "$imap_pid" 2>/dev/null || true
  fi
  if [[ -n $pgdir ]]; then
    ./scripts/pg.sh stop "$pgdir" >/dev/null 2>&1 || true
    rm -rf -- "$pgdir"
  fi
}
trap cleanup EXIT
pgdir=$(mktemp -d "${TMPDIR:-/tmp}/backfill-demo-pg.XXXXXX")

# A free port for PostgreSQL: 55432 unless something else has it.
port=55432
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
  port=$((port + 1))
done
echo "🐘 Starting a throwaway PostgreSQL on 127.0.0.1:$port ($pgdir)..."
url=$(./scripts/pg.sh start "$pgdir" "$port")
# Every demo starts from an empty database, so it shows a full backfill.
psql=$(dirname "$(readlink -f "$(command -v pg_ctl || echo /usr/lib/postgresql/15/bin/pg_ctl)")")/psql
[[ -x $psql ]] || psql=psql
"$psql" -X -q -d "${url%/backfill*}/postgres" -c "DROP DATABASE IF EXISTS backfill WITH (FORCE)" -c "CREATE DATABASE backfill"

echo "📮 Starting a local IMAP server with $n generated messages..."
rm -f "$demo/imap.url"
"$demo/bin/demoimap" -addr 127.0.0.1:0 -n "$n" -seed 1 -user support@example.com -password demo \
  -ready-file "$demo/imap.url" </dev/null >"$demo/imap.log" 2>&1 &
imap_pid=$!
for _ in $(seq 600); do
  [[ -s $demo/imap.url ]] && break
  kill -0 "$imap_pid" 2>/dev/null || { cat "$demo/imap.log" >&2; exit 1; }
  sleep 0.1
done
[[ -s $demo/imap.url ]] || { echo "demo IMAP server did not start" >&2; exit 1; }

export DATABASE_URL=$url
export BACKFILL_INBOX_DEMO
BACKFILL_INBOX_DEMO=$(<"$demo/imap.url")
export BACKFILL_INBOX_DEMO_PASSWORD=demo
backfill=$demo/bin/backfill

run() {
  echo
  echo "\$ backfill $*"
  "$backfill" "$@"
}

run migrate
run --inbox demo --dry-run
run --inbox demo --workers "$workers"
run --inbox demo
run status

echo
echo "\$ psql: a few rows"
"$psql" -X -d "$url" -P pager=off -c "
  SELECT inbox, count(*) AS messages, count(DISTINCT thread_id) AS threads,
         count(*) FILTER (WHERE attachments <> '[]') AS with_attachments
  FROM email_messages GROUP BY inbox" -c "
  SELECT left(subject, 48) AS subject, from_address, received_at, thread_id,
         jsonb_array_length(attachments) AS atts
  FROM email_messages ORDER BY received_at DESC LIMIT 8" -c "
  SELECT thread_id, left(subject, 40) AS subject, message_count, participants
  FROM email_threads ORDER BY message_count DESC, thread_id LIMIT 5"
echo
echo "✅ Demo done. Re-run 'make demo' to start over; binaries and logs are in .demo/, the database is gone."
