#!/usr/bin/env bash
# make cover: runs the whole suite once, with coverage of the packages users
# depend on when something goes wrong (pipeline, imapsrc, pgsink, message)
# counted from every package's tests, and prints one line per package. The
# profile stays in .cover/cover.out for `go tool cover -html`.
#
# Usage: scripts/cover.sh [extra go test flags, e.g. -run TestX]
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(pipeline imapsrc pgsink message)
module=$(go list -m)
coverpkg=$(printf "$module/%s," "${pkgs[@]}")
mkdir -p .cover
# A failing test still leaves a profile: the numbers are printed, and the
# failure is the exit status.
status=0
go test -count=1 -timeout 25m -coverpkg="${coverpkg%,}" -coverprofile=.cover/cover.out "$@" ./... || status=$?

# A block run by several test binaries is listed once per binary: it counts
# as covered if any of them ran it.
awk -v module="$module/" -v pkgs="${pkgs[*]}" '
	NR == 1 { next } # mode: line
	{
		split($1, loc, ":"); file = loc[1]
		pkg = file; sub("/[^/]*$", "", pkg); sub("^" module, "", pkg)
		key = $1
		if (!(key in stmts)) { stmts[key] = $2; pkgOf[key] = pkg }
		if ($3 > 0) covered[key] = 1
	}
	END {
		for (k in stmts) {
			total[pkgOf[k]] += stmts[k]; all += stmts[k]
			if (k in covered) { hit[pkgOf[k]] += stmts[k]; allHit += stmts[k] }
		}
		printf "\ncoverage of statements, from the whole suite:\n"
		n = split(pkgs, names, " ")
		for (i = 1; i <= n; i++) {
			p = names[i]
			if (!(p in total)) continue
			printf "  %-10s %5.1f%%  (%d of %d statements)\n", p, 100 * hit[p] / total[p], hit[p], total[p]
		}
		printf "  %-10s %5.1f%%  (%d of %d statements)\n", "all four", 100 * allHit / all, allHit, all
	}' .cover/cover.out
exit "$status"
