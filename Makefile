# The README's two commands, `make demo` and `make test`, do all set-up on a
# fresh machine that has only Python 3.11, pip and node/npm.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: setup bytecode test test-slow demo bench bench-backfill bench-live bench-api bench-payouts bench-transfers bench-distributions bench-wallet bench-report lint contracts clean

setup: $(STAMP) $(NODE_STAMP) bytecode

# The project's own modules, compiled ahead as any installed package is:
# where PYTHONDONTWRITEBYTECODE is set (containers, CI) the import system
# never caches them, and every `chainsettle` start compiled some 250 KiB of
# source again (about 70 ms of a 0.45 s start-up). Only stale files are
# rewritten; a module edited later is compiled in memory until make runs again.
# The packages are pyproject.toml's own list (their top-level directories).
bytecode: $(STAMP)
	$(PY) -m compileall -q -j 0 $$($(PY) -c "import tomllib; pkgs = tomllib.load(open('pyproject.toml', 'rb'))['tool']['setuptools']['packages']; print(*sorted({p.split('.')[0] for p in pkgs}))")

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

# Benchmarks print figures (never pass/fail); each target records its rows in
# bench/results.json and `make bench` prints the whole table at the end.
# Bigger runs: make bench-backfill BACKFILL_ARGS="--blocks 20000" (2,000,000
# events), make bench-live LIVE_ARGS="--blocks 100" for a shorter one.
BACKFILL_ARGS ?=
LIVE_ARGS ?=
API_ARGS ?=
PAYOUT_ARGS ?=
PAYOUT_PIPELINE_ARGS ?=
TRANSFER_ARGS ?=

bench: bench-backfill bench-live bench-api bench-payouts bench-transfers bench-distributions bench-wallet bench-report

bench-backfill: setup
	$(PY) bench/backfill.py $(BACKFILL_ARGS)
	$(PY) bench/multichain.py

bench-live: setup
	$(PY) bench/live.py $(LIVE_ARGS)

# wrk (Debian) is the load generator; installed here when missing.
bench-api: setup
	command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null || sudo apt-get install -y -q wrk >/dev/null
	ulimit -n 8192; $(PY) bench/api.py $(API_ARGS)

bench-payouts: setup
	$(PY) bench/payouts.py $(PAYOUT_ARGS)
	$(PY) bench/payout_pipeline.py $(PAYOUT_PIPELINE_ARGS)
	$(PY) bench/payout_gauges.py

# Ledger transfers through the admin API (issue 25): single, linked x100, hot and spread, hold/post.
bench-transfers: setup
	$(PY) bench/transfers.py $(TRANSFER_ARGS)

# Distributions (issue 28): gas per claim / voucher / pushed recipient, tree build, snapshot time.
bench-distributions: setup
	$(PY) bench/distributions.py $(DISTRIBUTION_ARGS)

bench-wallet: setup
	ulimit -n 8192; $(PY) bench/wallet.py $(WALLET_ARGS)

bench-report:
	$(PY) bench/results.py

lint: setup
	$(VENV)/bin/ruff check .

contracts: $(NODE_STAMP)
	node contracts/build.mjs

clean:
	rm -rf $(VENV) node_modules .state
