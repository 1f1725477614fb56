# Everything a user or CI runs goes through these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8765
TENANTS ?= 40

.PHONY: help demo test lint types unit integration browser chromium sandbox bench \
	bench-webhooks clean

help:
	@echo "make demo   run the sandbox and two reconciles against it"
	@echo "make test   lint, type-check and run every test"
	@echo "make browser  run the browser tests (headless chromium) alone"
	@echo "make sandbox  serve the sandbox on port $(PORT) until Ctrl-C"
	@echo "make bench  measure a 10,000-tenant sync against the sandbox"
	@echo "make bench-webhooks  measure signed webhooks/s and webhook-to-write time"
	@echo "make stack  run web, worker, scheduler and Redis here until Ctrl-C"

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m sandbox.demo --port $(PORT) --tenants $(TENANTS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	scripts/with-redis.sh $(BIN)/pytest tests/integration

test: lint types chromium
	scripts/with-redis.sh $(BIN)/pytest

browser: $(STAMP) chromium
	scripts/with-redis.sh $(BIN)/pytest tests/browser

# The browser tests drive Debian's chromium; as root it is installed when
# missing. Elsewhere they fail and say so, unless SKIP_BROWSER_TESTS=1.
chromium:
	@if [ "$${SKIP_BROWSER_TESTS:-}" = 1 ] || [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing chromium for the browser tests." >&2; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "chromium is missing and cannot be installed here (not root):" \
			"the browser tests will fail; SKIP_BROWSER_TESTS=1 skips them." >&2; \
	fi

sandbox: $(STAMP)
	$(BIN)/python -m sandbox --port $(PORT) --tenants $(TENANTS)

bench: $(STAMP)
	scripts/with-redis.sh $(BIN)/python -m bench.reconcile

bench-webhooks: $(STAMP)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	scripts/with-redis.sh $(BIN)/python -m bench.webhooks

# Without Docker: Redis, web, an RQ worker and the scheduler under honcho; with
# no .env, against the sandbox. STACK_PORT (default 8000) is the web port.
.PHONY: stack
stack: $(STAMP)
	scripts/stack.sh

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
