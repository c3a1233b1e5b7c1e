# The two commands of the README: `make demo` and `make test`. Each sets up everything it needs on a
# fresh machine: the virtual environment and dependencies here, Kafka and PostgreSQL through
# `vote-ledger stack up` (fetched from Maven Central / Debian's packages on first use, then cached).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install system-deps deploy-tools lint test unit contract demo bench bench-scale faults soak stack-up stack-up-replicated stack-down clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Lint, format and types first (seconds): a style or type error fails before the long suite starts.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Debian packages the dashboard's browser test and the Prometheus scrape test run (issue 13): a real
# Chromium with its driver, and a real Prometheus server. Installed with apt-get when one is missing and
# we are root (as PostgreSQL is by `stack up`); otherwise the command to run is printed and make stops.
SYSTEM_BINS     := chromium chromedriver prometheus
SYSTEM_PACKAGES := chromium chromium-driver prometheus

system-deps:
	@missing=""; for b in $(SYSTEM_BINS); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "missing:$$missing; running apt-get install -y $(SYSTEM_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else \
	    echo "missing:$$missing; install them: sudo apt-get install $(SYSTEM_PACKAGES)" >&2; exit 1; \
	  fi; \
	fi

# Two workers, one test file each at a time (--dist loadfile: a file's tests share their fixtures and
# never race each other): most of the suite waits on Kafka, PostgreSQL, subprocesses and a browser, so
# two workers overlap the waits on this 2-core machine (measured: 20 min with two under a load average of
# 9 from other work, against an estimated 25+ serially since issue 13's API, browser and scrape tests).
test: lint system-deps deploy-tools
	$(BIN)/pytest -n 2 --dist loadfile

# kustomize, to build the Kubernetes manifests that tests/unit/test_deploy_*.py validate (issue 14): built
# once from the Go module proxy into the cache (measured: 55 s on this machine), as no registry here serves
# its binary. The Dockerfile's and compose file's checkers come from PyPI with the test extras.
KUSTOMIZE_VERSION := v5.7.1
GO_HOME   := $(CURDIR)/.cache/go
KUSTOMIZE := $(GO_HOME)/bin/kustomize

deploy-tools: $(KUSTOMIZE)

$(KUSTOMIZE):
	@command -v go >/dev/null 2>&1 || { echo "go is needed once to build kustomize: install golang" >&2; exit 1; }
	GOPATH=$(GO_HOME) GOMODCACHE=$(GO_HOME)/mod GOCACHE=$(GO_HOME)/build GOFLAGS=-modcacherw \
	  go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

# Every fault case, the long ones too (not timed as a whole yet), then the README's fault table from the results
# (bench-results/faults/). `make test` runs only the short cases.
faults: install
	$(BIN)/pytest tests/faults -m faults --timeout 3600
	$(BIN)/python -m tests.faults.report --readme README.md

# The soak: 30 minutes at a steady rate (VOTE_LEDGER_SOAK_MINUTES), lag, memory and errors sampled.
soak: install
	$(BIN)/pytest tests/faults -m soak --timeout 7200 -s

unit: install
	$(BIN)/pytest tests/unit

# The wire contract's JSON Schemas and AsyncAPI document under docs/, regenerated from the code
# (tests/unit/test_contract_drift.py fails when they drift).
contract: install
	$(BIN)/python -m services.devtools.contract

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" deploy/local/demo.sh

# The benchmark of the README (about 8 minutes): not part of `make test`, which runs its smoke test.
bench: install
	eval "$$($(BIN)/vote-ledger stack up)" && $(BIN)/vote-ledger bench --readme README.md

# The scale curve's 10M point (issue 15), its workload streamed: ~14 GB in Kafka and more in PostgreSQL while it
# runs (dropped after), 30-90 minutes. Merged into bench-results/results.json/.md and the README's table.
bench-scale: install
	eval "$$($(BIN)/vote-ledger stack up)" && $(BIN)/vote-ledger bench --scale-only --scale 10000000 --readme README.md

stack-up: install
	$(BIN)/vote-ledger stack up

# Three Kafka brokers (KRaft, replication 3, min.insync.replicas 2) and a PostgreSQL primary with a
# streaming hot standby, on loopback (issue 14).
stack-up-replicated: install
	$(BIN)/vote-ledger stack up --replicated

stack-down: install
	$(BIN)/vote-ledger stack down

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
