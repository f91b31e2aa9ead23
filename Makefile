# trustpulse: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
CHDB_DIR := $(CURDIR)/.cache/chdb
AXE_DIR := $(CURDIR)/.cache/axe
HELM_DIR := $(CURDIR)/.cache/helm
DATA_DIR ?= $(CURDIR)/data/demo
FUZZTIME ?= 15s
# each reader of outside files (roster CSV, cohorts CSV, survey file) and each parser of query
# parameters (filters and group_by, periods, retention, the dashboards' explorer) is fuzzed for
# this many inputs;
# A count, not a duration: a run that ends on a deadline while a slow YAML input is in
# flight fails with "context deadline exceeded" (seen once on a fresh clone).
READER_FUZZTIME ?= 5000x

.PHONY: demo test bench build deps test-deps chdb axe helm vet test-go test-fuzz test-compat test-cluster clean

## demo: install what is missing, run everything with a seeded demo organisation
demo: deps build
	bin/trustpulse demo --data-dir $(DATA_DIR)

## test: install what is missing and run every test
test: deps test-deps vet test-go test-fuzz test-compat

## bench: measure ingest, projection, queries, growth and memory against
## their limits and PostgreSQL 15; writes docs/benchmarks.md (not part of test)
bench: deps build
	@deploy/scripts/ensure-postgres.sh
	$(GO) build -o bin/trustbench ./cmd/trustbench
	# The whole run with NATS's default fsync (setting up a 1M-response wave
	# with fsync before every ack would take hours), then ingest (sections 1
	# and 10) again with fsync before every ack, as serve runs by default.
	bin/trustbench --nats-sync interval --out docs/benchmarks.md
	bin/trustbench --nats-sync always --only ingest --out docs/benchmarks.md
	# The projection drained by 1, 2 and 3 partitions (section 11).
	bin/trustbench --nats-sync interval --only partitions --out docs/benchmarks.md

build:
	$(GO) build -o bin/trustpulse ./cmd/trustpulse

deps:
	@deploy/scripts/ensure-clickhouse.sh
	@$(GO) mod download

test-deps: chdb axe helm
	@deploy/scripts/ensure-chromium.sh
	@deploy/scripts/ensure-ilp.sh
	@deploy/scripts/ensure-zookeeper.sh
	@deploy/scripts/ensure-promtool.sh

chdb:
	@deploy/scripts/fetch-chdb.sh $(CHDB_DIR)

axe:
	@deploy/scripts/fetch-axe.sh $(AXE_DIR)

# helm, for the chart test (helm lint and helm template of deploy/helm)
helm:
	@deploy/scripts/ensure-helm.sh $(HELM_DIR)

vet:
	$(GO) vet ./...
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	@big="$$(git ls-files -z 2>/dev/null | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$$1 > 5000000 {print "  " $$2}')"; \
		if [ -n "$$big" ]; then echo "tracked files over 5 MB (build outputs belong in .gitignore):"; echo "$$big"; exit 1; fi

# TRUSTPULSE_REQUIRE_TOOLS: a test whose tool is missing fails instead of
# skipping (test-deps has installed them all).
test-go:
	TRUSTPULSE_AXE=$(AXE_DIR)/axe.min.js TRUSTPULSE_HELM=$(HELM_DIR)/helm TRUSTPULSE_REQUIRE_TOOLS=1 $(GO) test -race -count=1 -timeout 40m ./...

test-fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeSubmitRequest$$' -fuzztime $(FUZZTIME) ./ingest
	for f in FuzzParseRoster FuzzParseCohorts FuzzParseSurveyFile; do \
		$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(READER_FUZZTIME) ./ingest || exit 1; \
	done
	for f in FuzzParseSlice FuzzParsePeriod FuzzParseRetention; do \
		$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(READER_FUZZTIME) ./query || exit 1; \
	done
	$(GO) test -run '^$$' -fuzz '^FuzzParseExplore$$' -fuzztime $(READER_FUZZTIME) ./query/dashboard
	$(GO) test -run '^$$' -fuzz '^FuzzCleanPlan$$' -fuzztime $(READER_FUZZTIME) ./schemas

test-compat: chdb
	CHDB_LIB_PATH=$(CHDB_DIR)/libchdb.so $(GO) test -count=1 -tags chdb -run '^TestCurrentClickHouseCompat$$' -v ./schemas
	# the cluster form, in a process of its own (chDB holds one engine per process)
	CHDB_LIB_PATH=$(CHDB_DIR)/libchdb.so $(GO) test -count=1 -tags chdb -run '^TestCurrentClickHouseClusterCompat$$' -v ./schemas

## test-cluster: the ClickHouse cluster test of two shards of two replicas
## (make test runs the one-shard version); about two minutes
test-cluster: deps
	@deploy/scripts/ensure-zookeeper.sh
	TRUSTPULSE_TEST_CLUSTER=1 $(GO) test -race -count=1 -timeout 15m -run '^TestClickHouseClusterTwoShards$$' -v ./cmd/trustpulse

clean:
	rm -rf bin data .cache
