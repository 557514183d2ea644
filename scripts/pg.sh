#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for `make demo` and manual runs, set up as
# the tests set up theirs (internal/pgtest): trust authentication, listening
# on 127.0.0.1 only, run as user postgres when invoked as root.
#
# Unlike the tests' clusters it keeps fsync on: benchmarks run against it are
# compared with tools that sync their writes.
#
# Usage:
#   scripts/pg.sh start DIR [PORT]   create the cluster in DIR if needed (with
#                                    a database "backfill"), start it on PORT
#                                    (default 55432) and print its DATABASE_URL
#   scripts/pg.sh stop DIR           stop it; rm -rf DIR throws it away
#
#   export DATABASE_URL="$(scripts/pg.sh start .demo/pg)"
set -euo pipefail

readonly default_port=55432

die() {
  echo "pg.sh: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 start DIR [PORT] | stop DIR" >&2
  exit 2
}

# find_bindir prints the directory of initdb and pg_ctl: the one in PATH,
# else the newest /usr/lib/postgresql/<version>/bin.
find_bindir() {
  local ctl
  if ctl=$(command -v pg_ctl) && command -v initdb >/dev/null 2>&1; then
    # Resolve links (/usr/local/bin/pg_ctl -> /usr/lib/postgresql/15/bin)
    # to find psql and createdb beside it.
    dirname "$(readlink -f "$ctl")"
    return 0
  fi
  local dir best=""
  while IFS= read -r dir; do
    if [[ -x $dir/pg_ctl && -x $dir/initdb ]]; then
      best=$dir
    fi
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
  [[ -n $best ]] || return 1
  echo "$best"
}

# bindir finds the programs, installing Debian's postgresql package when they
# are missing and we may (deps.sh keeps its system service from running).
bindir() {
  local dir
  if dir=$(find_bindir); then
    echo "$dir"
    return 0
  fi
  if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
    "$(dirname "${BASH_SOURCE[0]}")/deps.sh" postgresql >&2
    find_bindir && return 0
  fi
  die "no PostgreSQL programs (initdb, pg_ctl): install Debian's postgresql package (apt-get install -y postgresql)"
}

# as_postgres runs a command as the cluster's owner: initdb and postgres
# refuse to run as root.
as_postgres() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  local dir=$1 port=${2:-$default_port}
  if [[ ! $port =~ ^[0-9]+$ ]] || ((port == 0 || port > 65535)); then
    die "bad port '$port'"
  fi
  dir=$(realpath -m -- "$dir")
  local bin data=$dir/data
  bin=$(bindir)

  if [[ -f $data/postmaster.pid ]] && as_postgres "$bin/pg_ctl" status -D "$data" >/dev/null 2>&1; then
    port=$(<"$dir/port")
    echo "pg.sh: already running on port $port" >&2
  else
    ! port_in_use "$port" || die "port $port on 127.0.0.1 is taken: pass another PORT"
    mkdir -p -- "$dir"
    if ((EUID == 0)); then
      chown postgres: "$dir"
    fi
    as_postgres test -w "$dir" ||
      die "user postgres cannot write $dir: make its parents searchable (chmod o+x) or use a directory under /tmp"

    if [[ ! -f $data/PG_VERSION ]]; then
      as_postgres "$bin/initdb" -D "$data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
        </dev/null >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        die "initdb failed"
      }
    fi

    # A Unix socket path is limited to about 100 bytes; a longer one is left
    # out (clients use TCP anyway).
    local sock=$dir/sock
    if ((${#sock} > 90)); then
      sock=""
    else
      as_postgres mkdir -p "$sock"
    fi
    [[ $sock != *"'"* ]] || die "directory $dir contains a quote"
    # Output to a file, never to a pipe: the server would keep it open and
    # whoever reads it would never see its end.
    as_postgres "$bin/pg_ctl" start -w -D "$data" -l "$dir/postgres.log" \
      -o "-c listen_addresses=127.0.0.1 -p $port -k '$sock'" </dev/null >/dev/null 2>&1 || {
      tail -n 20 "$dir/postgres.log" >&2
      die "could not start PostgreSQL (log: $dir/postgres.log)"
    }
    echo "$port" >"$dir/port"
  fi

  local exists
  exists=$("$bin/psql" -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'backfill'")
  if [[ $exists != 1 ]]; then
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres backfill
  fi
  echo "postgres://postgres@127.0.0.1:$port/backfill?sslmode=disable"
}

stop() {
  local dir data bin
  dir=$(realpath -m -- "$1")
  data=$dir/data
  if [[ ! -f $data/postmaster.pid ]]; then
    echo "pg.sh: not running in $dir" >&2
    return 0
  fi
  bin=$(bindir)
  as_postgres "$bin/pg_ctl" stop -w -D "$data" -m fast </dev/null >/dev/null 2>&1 ||
    die "could not stop PostgreSQL in $dir (log: $dir/postgres.log)"
}

main() {
  case ${1:-}/$# in
    start/2 | start/3) start "$2" "${3:-}" ;;
    stop/2) stop "$2" ;;
    *) usage ;;
  esac
}

main "$@"
