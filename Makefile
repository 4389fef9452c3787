# Operations Service. `make` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   ?= bin/opsvc
# Pinned: the lint the spec must pass, in CI and here.
REDOCLY ?= npx --yes @redocly/cli@2.77.0

# make run: the embedded SQLite default and the sample tokens file.
DATABASE_URL     ?= sqlite:operations.db
AUTH_TOKENS_FILE ?= testdata/tokens.json
export DATABASE_URL AUTH_TOKENS_FILE

.DEFAULT_GOAL := help
.PHONY: help generate check-generated build run test test-short faults fuzz soak galera-test lint lint-spec tidy-check keystone-up keystone-down bench bench-go docs-assets ts-check ts-generate

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

GENERATED := gen/ client/client.gen.go

generate: ## regenerate gen/ (server) and client/client.gen.go (Go client) from openapi.yaml
	$(GO) generate ./gen/... ./client/...

check-generated: generate ## fail when gen/ or client/client.gen.go is not what openapi.yaml generates
	@git diff --exit-code -- $(GENERATED) || { echo "generated code is stale: run make generate and commit it"; exit 1; }
	@test -z "$$(git status --porcelain -- $(GENERATED))" || { git status --porcelain -- $(GENERATED); echo "generated code has untracked changes"; exit 1; }

build: ## build bin/opsvc and bin/opsctl (pure Go, no cgo)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/opsvc
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/opsctl ./cmd/opsctl

run: ## run on the embedded SQLite default with testdata/tokens.json, on :8080
	$(GO) run ./cmd/opsvc

test: ## run every test, with the race detector (MariaDB from TEST_MYSQL_DSN, Keystone from KEYSTONE_ENV_FILE)
	$(GO) test -race -count=1 -timeout 20m ./...

# make bench: the server and base database come from BENCH_DATABASE_URL
# (default mysql://root:@127.0.0.1:3306/opsvc_bench); BENCH_FLAGS go to
# opsbench, e.g. BENCH_FLAGS=-quick for a smoke run.
BENCH_FLAGS ?=

bench: build ## measure the service on MariaDB beside plain-SQL floors: one table, under 10 minutes (README: Performance)
	$(GO) build -o bin/opsbench ./cmd/opsbench
	bin/opsbench -service $(BIN) $(BENCH_FLAGS)

bench-go: ## Go benchmarks: validation, the A1 handler in process, the store write (MariaDB too with TEST_MYSQL_DSN)
	$(GO) test -run '^$$' -bench . -benchmem ./server/ ./store/

faults: ## the fault scenarios (issue 8) on a private MariaDB, with their figures: database killed, frozen, down at start; SIGTERM under load
	OPSVC_FAULTS=1 $(GO) test -race -count=1 -timeout 15m -run '^TestFault_' -v ./cmd/opsvc/

# make galera-test: a 3-node Galera cluster of its own (scripts/galera.sh, free
# ports, a temporary directory), two instances, node loss and quorum loss
# under load; prints its figures. Built with -tags galera only, so make test
# neither runs nor skips it. Needs mariadb-server, galera-4 and rsync.
galera-test: ## scale-out on a 3-node Galera cluster (issue 12): node killed and quorum lost under load, nothing acknowledged lost; prints figures
	$(GO) test -tags galera -count=1 -timeout 15m -run '^TestGalera$$' -v ./cmd/opsvc/

# make fuzz: every Fuzz target of server/ (A1 and B2 bodies, B1 and B3 query
# strings, path ids, the JSON decoder against encoding/json), one after the
# other, FUZZTIME each: 6 targets at 2m is 12 minutes. A failing input is written to server/testdata/fuzz/<FuzzName>/;
# fix the bug and commit the input, which then runs as a seed in make test.
FUZZTIME ?= 2m

fuzz: ## fuzz each Fuzz target of server/ for FUZZTIME (default 2m: 12 minutes in all; not part of CI)
	@failed=; for t in $$($(GO) test -list '^Fuzz' ./server/ | grep '^Fuzz'); do \
		echo "=== $$t for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./server/ || failed="$$failed $$t"; \
	done; \
	test -z "$$failed" || { echo "fuzz: failed:$$failed (inputs in server/testdata/fuzz/)"; exit 1; }

# make soak: SOAK_DURATION of load (10m by default) on NAME_soak of
# BENCH_DATABASE_URL's server; SOAK_FLAGS go to opsbench soak.
SOAK_DURATION ?= 10m
SOAK_FLAGS ?=

soak: build ## 10 minutes (SOAK_DURATION) of mixed writes and reads over 32 connections on MariaDB: fails on any error or 5xx, or when RSS, goroutines, files or database connections are not flat
	$(GO) build -o bin/opsbench ./cmd/opsbench
	bin/opsbench soak -service $(BIN) -duration $(SOAK_DURATION) $(SOAK_FLAGS)

lint: ## gofmt, go vet, and the import arrows of STYLE.md
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v -e '^gen/' -e '\.gen\.go$$')); test -z "$$out" || { echo "gofmt would change: $$out"; exit 1; }
	$(GO) vet ./...
	@bad=$$($(GO) list -f '{{join .Imports "\n"}}' . ./gen/ ./keystone/ ./client/ | grep '^example.com/opsvc' || true); \
		test -z "$$bad" || { echo "the root package, gen, keystone and client must import nothing of ours: $$bad"; exit 1; }
	@bad=$$($(GO) list -f '{{join .Imports "\n"}}' ./store/ | grep -E '^example.com/opsvc|labstack/echo' || true); \
		test -z "$$bad" || { echo "store must not import: $$bad"; exit 1; }
	@bad=$$($(GO) list -f '{{join .Imports "\n"}}' ./server/ | grep -E '^gorm.io|/keystone$$' || true); \
		test -z "$$bad" || { echo "server must not import: $$bad"; exit 1; }
	@echo "lint: ok"

lint-spec: ## lint openapi.yaml with Redocly (needs npm)
	$(REDOCLY) lint openapi.yaml

tidy-check: ## fail when go.mod or go.sum is not tidy
	$(GO) mod tidy -diff

# make docs-assets: Redoc's standalone script, from the npm registry's package
# (npm pack checks it against the registry's integrity hash), into apidocs/,
# which the binary embeds: /docs loads nothing from elsewhere.
REDOC_VERSION ?= 2.5.4

docs-assets: ## vendor the /docs page's script (Redoc REDOC_VERSION) from the npm registry into apidocs/
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
		(cd "$$tmp" && npm pack --silent redoc@$(REDOC_VERSION) >/dev/null); \
		tar -xzf "$$tmp/redoc-$(REDOC_VERSION).tgz" -C "$$tmp" package/bundles/redoc.standalone.js package/LICENSE; \
		cp "$$tmp/package/bundles/redoc.standalone.js" apidocs/redoc.standalone.js; \
		cp "$$tmp/package/LICENSE" apidocs/redoc.LICENSE; \
		printf 'redoc@%s from the npm registry (make docs-assets)\nsha256 %s  redoc.standalone.js\n' \
			$(REDOC_VERSION) "$$(sha256sum apidocs/redoc.standalone.js | cut -d' ' -f1)" > apidocs/redoc.VERSION; \
		cat apidocs/redoc.VERSION

ts-generate: ## regenerate ts/src/api.ts from openapi.yaml (openapi-typescript; needs npm)
	cd ts && npm ci --no-audit --no-fund --loglevel=error && npm run --silent generate

ts-check: ## TypeScript: ts/src/api.ts current (openapi-typescript), the openapi-fetch example type-checks (tsc --noEmit) and runs against the service (needs npm)
	scripts/ts-check.sh

keystone-up: ## start a local Keystone for the Keystone tests (.keystone/keystone.env)
	scripts/keystone.sh start

keystone-down: ## stop the local Keystone
	scripts/keystone.sh stop
