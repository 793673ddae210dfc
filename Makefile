# Everything goes through a virtual environment in .venv; the first target that needs
# it creates it and installs the project with its test extras.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Test tools outside PyPI: Debian's chromium (browser tests, never a downloaded browser),
# docker-compose and caddy (checking docker/ without an engine), axe-core and the
# Fedify peer from npm.
TOOLS_STAMP := $(VENV)/.test-tools-stamp

.PHONY: demo test lint soak soak-short bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(TOOLS_STAMP): $(STAMP) tests/browser/package-lock.json tests/interop/package-lock.json
	@{ test -x /usr/bin/chromium && test -x /usr/bin/docker-compose && test -x /usr/bin/caddy; } || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && { apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium docker-compose caddy >/dev/null; }; } || \
		echo "note: chromium, docker-compose or caddy is missing and could not be installed; their tests will be skipped"
	@if command -v npm >/dev/null; then \
		(cd tests/browser && npm ci --no-audit --no-fund --silent) && \
		(cd tests/interop && npm ci --no-audit --no-fund --silent); \
	else echo "note: npm is missing; the Fedify interop and axe-core checks will be skipped"; fi
	touch $(TOOLS_STAMP)

demo: $(STAMP)
	$(BIN)/praxisnetz demo

test: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .

# `make test` runs the short soak too (tests/test_soak_short.py, about two minutes);
# `make soak-short` runs only it, `make soak` the full one (5,000 activities, 15-30 min).
soak-short: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m soak

soak: $(STAMP)
	$(BIN)/python -m soak

bench: $(STAMP)
	$(BIN)/python -m bench

# The same benchmarks at small sizes (a few minutes): for a first look, not for the record.
bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) build *.egg-info tests/browser/node_modules tests/interop/node_modules
