# The README's two commands, `make demo` and `make test`, do all set-up on a
# fresh machine that has only Python 3.11, pip and node/npm.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: setup test test-slow demo bench lint contracts clean

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

test: setup
	$(PY) -m pytest -q -p no:cacheprovider tests

# Long soak and kill-loop runs; not part of `make test`.
test-slow: setup
	CHAINSETTLE_SLOW=1 $(PY) -m pytest -q -p no:cacheprovider tests

demo: setup
	$(VENV)/bin/chainsettle demo

bench: setup
	$(PY) bench/backfill.py

lint: setup
	$(VENV)/bin/ruff check .

contracts: $(NODE_STAMP)
	node contracts/build.mjs

clean:
	rm -rf $(VENV) node_modules .state
