# The two set-up commands a fresh machine needs: `make run` and `make test`. Everything else is
# built from them. The venv is the only state; `make clean` removes it and the local data.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast bench mpy-check lint clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the host, firmware tools and test dependencies

run: $(STAMP)  ## start the gateway on the simulated board with the real firmware (Ctrl-C stops)
	$(VENV)/bin/smgw run

test: $(STAMP)  ## the whole suite: unit, fuzz, MicroPython (mpy-check) and end-to-end tests
	$(PY) tools/mpycheck.py -q
	$(PY) -m pytest -q

test-fast: $(STAMP)  ## everything except the slow end-to-end tests
	$(PY) -m pytest -q -m "not slow"

mpy-check: $(STAMP)  ## mpy-cross compile, MicroPython lint, CPython-vs-MicroPython differential tests
	$(PY) tools/mpycheck.py $(MPYCHECK_FLAGS)

bench: $(STAMP)  ## measure link overhead, host throughput and MicroPython cost -> bench/results.json
	$(PY) tools/bench.py --out bench/results.json

clean:  ## remove the venv and local run data
	rm -rf $(VENV) var .pytest_cache .hypothesis *.egg-info
