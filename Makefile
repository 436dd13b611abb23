# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: `make run` needs the runtime only; `make test` and `make lint` add the dev
# extra (pytest, ruff, mypy...) on top. Either order works, and a changed pyproject.toml
# reinstalls. Both are editable installs: the checkout's code is what runs.
RUN_STAMP := $(VENV)/.runtime-stamp
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-installed-stamp

.PHONY: run test lint fmt bench bench-tools clean

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Ctrl-C stops the daemon cleanly (it exits 0), but make, which gets the same SIGINT from
# the terminal, then reports "Interrupt" and exits 130 (README, "Two commands").
run: $(RUN_STAMP)
	$(BIN)/omnimind serve

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff format --check omnimind_trio tests bench
	$(BIN)/ruff check omnimind_trio tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format omnimind_trio tests bench
	$(BIN)/ruff check --fix omnimind_trio tests bench

# `make bench` (quick, under 3 minutes) or `make bench ARGS=--full`. The peers and the
# load generator come from the `bench` extra; wrk, redis-server and dbus-daemon (section
# O's private buses) are Debian packages, installed here when missing and we are root
# (figures needing them are N/A otherwise).
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench-tools:
	@if ! command -v wrk >/dev/null || ! command -v redis-server >/dev/null || \
			! command -v dbus-daemon >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq --no-install-recommends \
				wrk redis-server dbus-daemon; \
		else \
			echo "bench: wrk, redis-server or dbus-daemon missing" \
				"(apt-get install wrk redis-server dbus-daemon)"; \
		fi; \
	fi

bench: $(BENCH_STAMP) bench-tools
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
