# Two entry points for a fresh clone: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Optional: a torch wheel index (for example PyTorch's CPU-only index on a machine elsewhere).
TORCH_INDEX ?=

.PHONY: install demo test test-slow lint bench

# Every install goes through constraints.txt (torch==2.13.0); pyproject.toml only says torch>=2.9.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned, so nothing later can pull a different (CUDA) build.
	$(PY) -m pip install --quiet -c constraints.txt torch $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	# Every extra: the tests use them all (parquet, ray, d4rl, the metric sinks).
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fino demo

# The tests run in one process per core (pytest-xdist; each takes its share of the cores, see
# tests/conftest.py), a slow test stealing no turn from the quick ones; the 15 slowest are
# listed at the end.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-logo
	$(PY) -m pytest -n auto --dist worksteal --durations=15

# Few and long: every test is named as it starts.
test-slow: $(STAMP)
	$(PY) -m pytest -v -m slow --durations=15

bench: $(STAMP)
	$(VENV)/bin/fino bench
