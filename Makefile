# txflow — the two commands a newcomer needs are `make demo` and `make test`.
GO ?= go
ROWS ?= 1000000
WORKERS ?= 1

.PHONY: demo test test-short check build bench bench-sql bench-delivery bench-broker bench-inbox clean-state

## demo: run the whole pipeline on the bundled sample files (local Temporal + PostgreSQL)
demo:
	$(GO) run ./dev/demo

## test: vet and run every test; the tests start their own PostgreSQL and Temporal
test:
	$(GO) vet ./... ./dev/...
	$(GO) test -count=1 -timeout 40m ./... ./dev/...

## test-short: every unit and workflow test, in under a minute: no PostgreSQL, no Temporal server, no process started
test-short:
	$(GO) test -short -count=1 ./... ./dev/...

## check: formatting check (CI runs it before the tests)
check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: the pipeline on a generated file of ROWS rows, against the COPY floor (see README)
bench:
	$(GO) run ./dev/bench -rows $(ROWS) -workers $(WORKERS)

## bench-sql: the same, then what PostgreSQL alone takes to store what a run stores (a bound on the ratio)
bench-sql:
	$(GO) run ./dev/bench -rows $(ROWS) -workers $(WORKERS) -sql-alone

## bench-delivery: the same, delivering every result to an embedded NATS server; adds messages published and messages/s
bench-delivery:
	$(GO) run ./dev/bench -rows $(ROWS) -workers $(WORKERS) -delivery

## bench-broker: the broker alone: MSGS messages as Publish makes them to an embedded NATS server, nothing else running
bench-broker: MSGS ?= 1000000
bench-broker:
	$(GO) test -run '^$$' -bench PublishToJetStream -benchtime $(MSGS)x ./activities/

## bench-inbox: FILES files of ROWS rows each (default 200 of 1000) through the inbox, against one file of them all
bench-inbox: FILES ?= 200
bench-inbox: ROWS = 1000
bench-inbox:
	$(GO) run ./dev/bench -inbox-files $(FILES) -rows $(ROWS) -workers $(WORKERS)

## build: the worker, the starter and the dev server, into bin/
build:
	$(GO) build -o bin/ ./worker ./starter ./dev/devserver

## clean-state: forget the local Temporal history, database cluster and demo outputs; a cluster
## that lives in the temporary directory (.txflow/pg is then a link to it) goes too, stopped first
clean-state:
	@pg=.txflow/pg; if [ -L "$$pg" ]; then pg=$$(readlink "$$pg"); fi; \
	if [ -f "$$pg/postmaster.pid" ]; then \
		pid=$$(head -n 1 "$$pg/postmaster.pid"); echo "stopping PostgreSQL (pid $$pid) in $$pg"; \
		kill -INT "$$pid" 2>/dev/null; i=0; while kill -0 "$$pid" 2>/dev/null && [ $$i -lt 100 ]; do sleep 0.1; i=$$((i+1)); done; \
	fi; \
	if [ "$$pg" != .txflow/pg ]; then echo "rm -rf $$pg"; rm -rf "$$pg"; fi
	rm -rf .txflow data
