# The two set-up commands a fresh machine needs: `make run` and `make test`. Everything else is
# built from them. The venv is the only state; `make clean` removes it and the local data.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

BOARD ?= pico
PORT ?= /dev/ttyACM0
MICROPY_DIR ?= ../micropython

.PHONY: setup run test test-fast bench mpy-check flash firmware package-json release-manifest clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the host, firmware tools and test dependencies

run: $(STAMP)  ## the demo gateway on the simulated board: real firmware, meters, HAN portal (Ctrl-C stops)
	$(VENV)/bin/smgw demo

test: $(STAMP)  ## the whole suite: unit, fuzz, MicroPython (mpy-check) and end-to-end tests
	$(PY) tools/mpycheck.py -q
	$(PY) -m pytest -q

test-fast: $(STAMP)  ## everything except the slow end-to-end tests
	$(PY) -m pytest -q -m "not slow"

mpy-check: $(STAMP)  ## mpy-cross compile, MicroPython lint, CPython-vs-MicroPython differential tests
	$(PY) tools/mpycheck.py $(MPYCHECK_FLAGS)

bench: $(STAMP)  ## measure link overhead, host throughput and MicroPython cost -> bench/results.json
	$(PY) tools/bench.py --out bench/results.json

flash: $(STAMP)  ## install the firmware on a board: make flash BOARD=pico PORT=/dev/ttyACM0
	$(VENV)/bin/smgw flash --board $(BOARD) --port $(PORT) $(FLASH_FLAGS)

firmware: $(STAMP)  ## a MicroPython image with the firmware frozen in: make firmware BOARD=pico MICROPY_DIR=...
	$(VENV)/bin/smgw firmware --board $(BOARD) --micropython-dir $(MICROPY_DIR) $(FIRMWARE_FLAGS)

package-json: $(STAMP)  ## regenerate the mip package.json files (after adding or removing modules)
	$(PY) tools/package_json.py

release-manifest: $(STAMP)  ## regenerate firmware/release.json (after any firmware change)
	$(PY) tools/release_manifest.py

clean:  ## remove the venv and local run data
	rm -rf $(VENV) var .pytest_cache .hypothesis *.egg-info
