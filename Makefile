# Every build and test passes the duckdb_arrow tag: duckdb-go compiles its
# Arrow interface only with it. Keep go commands here so the tag is in one place.
GO    ?= go
TAGS  := duckdb_arrow
BIN   := bin/duet

.PHONY: build demo test check bench bench-ingest bench-query clean

build:
	$(GO) build -tags $(TAGS) -o $(BIN) ./cmd/duet

demo: build
	./$(BIN) demo

# The whole suite, as CI runs it, against real MinIO, nats-server and
# PostgreSQL: scripts/with-test-services installs or starts what is missing
# (MinIO is built once with go install, about 3 minutes).
test: check
	./scripts/with-test-services $(GO) test -tags $(TAGS) -count=1 -timeout 20m ./...

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet -tags $(TAGS) ./...

# Every benchmark. Batch build throughput: full and incremental builds of the
# demo view over 100M archived rows (about 5 minutes; -rows to change) next to
# DuckDB running the same SQL directly. A program,
# not a timed test; it rewrites its section of BENCHMARKS.md and
# bench/results/build.json. More flags: make bench BENCHFLAGS='-runs 5'.
# Then the ingest and query benchmarks (bench-ingest, bench-query below).
bench: build
	$(GO) run -tags $(TAGS) ./bench/buildbench -duet $(BIN) $(BENCHFLAGS)
	$(GO) run -tags $(TAGS) ./bench/ingestbench -duet $(BIN) $(INGESTFLAGS)
	$(GO) run -tags $(TAGS) ./bench/querybench -duet $(BIN) $(QUERYFLAGS)

# Ingest into the speed layer (about 3 minutes): sustained events/s per server
# core for Arrow IPC and NDJSON through POST /v1/ingest from 1 and 8
# concurrent producers, freshness (ack to visible in a merged query) at half
# that load, alone and while the view is rebuilt and its versions published
# over and over, and memory per retained event. Rewrites its section of
# BENCHMARKS.md and bench/results/ingest.json.
# More flags: make bench-ingest INGESTFLAGS='-batch 10000 -profile-dir prof'.
bench-ingest: build
	$(GO) run -tags $(TAGS) ./bench/ingestbench -duet $(BIN) $(INGESTFLAGS)

# Dashboard queries (about 7 minutes): p50/p99 and QPS at 1, 4 and 16
# clients through the Trino protocol on a merged view over 50M events (the
# last 1% in the speed layer), materialized as while the dataset is idle
# and merged at every query as under continuous ingest, next to DuckDB
# recomputing from the raw Parquet files, the merge overhead (the same
# queries on the batch view alone), and the query and an incremental build at 10M, 50M and 100M
# events. Rewrites its section of BENCHMARKS.md and bench/results/query.json.
# More flags: make bench-query QUERYFLAGS='-duration 20s -profile-dir prof'.
bench-query: build
	$(GO) run -tags $(TAGS) ./bench/querybench -duet $(BIN) $(QUERYFLAGS)

clean:
	rm -rf bin
