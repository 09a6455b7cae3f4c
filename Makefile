# Two commands: `make demo` and `make test`. Each sets up its own venv with pinned dependencies.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint test-slow test-install test-all fuzz clean sshd chromium

$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# constraints.txt pins every transitive version measured to coexist (torch 2.13.0 CPU, TF 2.21, ...)
	$(PY) -m pip install -q -c constraints.txt -e '.[all,dev]'
	# packages whose own pins would downgrade the stack above (see the file for why each is there)
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgekit demo -o demo-out

test: $(STAMP) sshd chromium lint
	$(PY) -m pytest

# Linter, formatter and type checker, configured in pyproject.toml; make test runs them first.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The ssh benchmark tests start a real OpenSSH server on 127.0.0.1; install it where we can.
sshd:
	@test -x /usr/sbin/sshd || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null) ; } || \
		echo "openssh-server not installed: the ssh tests will be skipped"

# The HTML report is checked in headless Chromium (Debian's chromium package); install it where we can.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
		echo "chromium not installed: the report rendering test will be skipped"

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

# The built wheel installed into a fresh venv: the one test that talks to the package index, so not in make test
test-install: $(STAMP)
	$(PY) -m pytest -m network tests/test_install.py

# The parsers of untrusted bytes with 2,000 examples each (the default suite runs 40)
fuzz: $(STAMP)
	EDGEKIT_FUZZ=long $(PY) -m pytest tests/test_fuzz.py

test-all: $(STAMP)
	$(PY) -m pytest -m ""

clean:
	rm -rf $(VENV) demo-out .pytest_cache
