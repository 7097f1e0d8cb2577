# txflow — the two commands a newcomer needs are `make demo` and `make test`.
GO ?= go

.PHONY: demo test check build clean-state

## demo: run the whole pipeline on the bundled sample files (local Temporal + PostgreSQL)
demo:
	$(GO) run ./demo

## test: vet and run every test; the tests start their own PostgreSQL and Temporal
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 40m ./...

## check: formatting check (CI runs it before the tests)
check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## build: the worker, the starter and the dev server, into bin/
build:
	$(GO) build -o bin/ ./worker ./starter ./devserver

## clean-state: forget the local Temporal history, database cluster and demo outputs
clean-state:
	rm -rf .txflow data
