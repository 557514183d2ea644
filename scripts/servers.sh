#!/usr/bin/env bash
# Prepares private copies of Cyrus IMAP and Courier-IMAP for the end-to-end
# tests (internal/cyrustest, internal/couriertest), without installing them:
# Debian's cyrus-imapd and courier-imap conflict with dovecot-imapd, which the
# suite needs too. Their packages, and the libraries they need that are not
# installed, are downloaded with apt-get download and unpacked with dpkg-deb
# into /var/cache/backfill-servers/<server>/root (BACKFILL_SERVERS_DIR moves
# it). The tests run each server from there, in a private mount namespace
# where the tree is laid over /usr and /etc, on a loopback port.
#
# Idempotent: a tree whose package list is unchanged is kept. Says what it
# did; exits non-zero with the reason when it cannot prepare a server.
#
# Usage: scripts/servers.sh [cyrus] [courier]   (default: both)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

base=${BACKFILL_SERVERS_DIR:-/var/cache/backfill-servers}

die() {
  echo "servers.sh: $*" >&2
  exit 1
}
say() { echo "servers.sh: $*"; }

# retry runs a command up to three times, 10 s and then 30 s apart: a
# download on a fresh machine can meet a mirror mid-sync or a dropped
# connection.
retry() {
  local attempt=1 pause=10
  until "$@"; do
    ((attempt < 3)) || return 1
    echo "servers.sh: '$*' failed; trying again in ${pause}s" >&2
    sleep "$pause"
    attempt=$((attempt + 1)) pause=$((pause * 3))
  done
}

# Packages per server. The libraries are those that the programs the tests
# run link to and a Debian 12 machine with Dovecot lacks; ldd below checks
# that nothing else is missing.
cyrus_packages=(cyrus-imapd cyrus-common sasl2-bin libpcre3 libxapian30 libical3)
cyrus_programs=(usr/lib/cyrus/bin/master usr/lib/cyrus/bin/imapd usr/lib/cyrus/bin/ctl_cyrusdb usr/lib/cyrus/bin/reconstruct usr/sbin/saslpasswd2)
courier_packages=(courier-imap courier-base courier-authlib courier-authlib-userdb libcourier-unicode4 libidn12 libltdl7 libgamin0 gamin)
courier_programs=(usr/sbin/couriertcpd usr/bin/imapd usr/lib/courier/courier/imaplogin usr/lib/courier/courier-authlib/authdaemond usr/lib/courier-authlib/libauthuserdb.so)

# libpath lists the tree's library folders, for LD_LIBRARY_PATH.
libpath() {
  local root=$1
  echo "$root/usr/lib/x86_64-linux-gnu:$root/usr/lib:$root/usr/lib/courier-authlib"
}

# check_tree fails when a program is missing or links to a library that is
# neither installed nor in the tree.
check_tree() {
  local name=$1 root=$2
  shift 2
  local prog missing=""
  for prog in "$@"; do
    [[ -e $root/$prog ]] || die "$name: $prog is not in the unpacked packages ($root)"
    # ldd fails on what is not a dynamic executable: only its output counts.
    missing+=$(LD_LIBRARY_PATH=$(libpath "$root") ldd "$root/$prog" 2>&1 | awk -v p="$prog" '/not found/ {print " " p ": " $1}' || true)
  done
  [[ -z $missing ]] || die "$name: libraries missing after unpacking:$missing"
}

# candidates prints package=version for the versions apt would fetch.
# One apt-cache call: each takes seconds on a busy machine.
candidates() {
  local policy p
  policy=$(apt-cache policy "$@" 2>/dev/null | awk '/^[^ ].*:$/ {sub(/:$/, ""); p = $0} /^  Candidate:/ {print p "=" $2}')
  for p in "$@"; do
    grep -m1 "^$p=" <<<"$policy" || echo "$p=none"
  done
}

prepare() {
  local name=$1
  local -n packages=${name}_packages programs=${name}_programs
  local dir=$base/$name
  local root=$dir/root stamp=$dir/packages.txt

  local want
  want=$(candidates "${packages[@]}")
  if grep -qE '=\(?none\)?$' <<<"$want" && [[ ! -f $stamp ]]; then
    # A fresh machine may have no package lists yet.
    say "$name: apt-get update"
    retry apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 || true
    want=$(candidates "${packages[@]}")
  fi
  if grep -qE '=\(?none\)?$' <<<"$want"; then
    die "$name: apt knows no candidate for: $(grep -E '=\(?none\)?$' <<<"$want" | tr '\n' ' ')(run apt-get update; Debian 12 'bookworm' has them)"
  fi
  if [[ -f $stamp && $(cat "$stamp") == "$want" && -d $root ]]; then
    check_tree "$name" "$root" "${programs[@]}"
    say "$name: ready in $root (unchanged)"
    return
  fi

  say "$name: downloading ${packages[*]}"
  local debs
  debs=$(mktemp -d)
  # apt-get download writes into the current folder; _apt must be able to.
  chmod 755 "$debs"
  # shellcheck disable=SC2046
  (cd "$debs" && retry apt-get download -q $(tr '\n' ' ' <<<"$want") >/dev/null 2>"$debs/err") ||
    die "$name: apt-get download failed: $(grep -v unsandboxed "$debs/err" | tail -3)"
  rm -rf "$root.new"
  mkdir -p "$root.new"
  local deb
  for deb in "$debs"/*.deb; do
    dpkg-deb -x "$deb" "$root.new"
  done
  rm -rf "$debs"
  # Debian 12's /lib is /usr/lib: merge the tree's the same way, so that
  # laying its /usr over the system's brings every library.
  if [[ -d $root.new/lib ]]; then
    cp -a "$root.new/lib/." "$root.new/usr/lib/"
    rm -rf "$root.new/lib"
  fi
  check_tree "$name" "$root.new" "${programs[@]}"
  rm -rf "$root"
  mv "$root.new" "$root"
  echo "$want" >"$stamp"
  say "$name: unpacked into $root"
}

# ensure_user creates a system user a server runs as, when it is missing.
ensure_user() {
  local user=$1 group=$2 home=$3
  if id "$user" >/dev/null 2>&1; then
    return
  fi
  useradd --system --gid "$group" --home-dir "$home" --no-create-home --shell /usr/sbin/nologin "$user" ||
    die "could not create system user $user"
  say "created system user $user (group $group)"
}

main() {
  local wanted=("$@")
  if ((${#wanted[@]} == 0)); then
    wanted=(cyrus courier)
  fi
  ((EUID == 0)) || die "needs root, to unpack into $base and to run the servers as their own users"
  command -v apt-get >/dev/null 2>&1 || die "needs apt-get (Debian) to fetch the packages"
  command -v unshare >/dev/null 2>&1 || die "needs unshare (util-linux) to run the servers in a private mount namespace"
  local want
  for want in "${wanted[@]}"; do
    case $want in
      cyrus)
        prepare cyrus
        # Cyrus's master drops privileges to the user cyrus, compiled in.
        ensure_user cyrus mail /var/lib/cyrus
        ;;
      courier) prepare courier ;; # Courier runs as daemon, which Debian has.
      *) die "unknown server '$want' (known: cyrus courier)" ;;
    esac
  done
}

main "$@"
