# agentcache developer commands. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A second environment for frameworks whose pins conflict with the main one (CrewAI: openai < 3, mcp < 2).
COMPAT := .venv-compat
COMPAT_STAMP := $(COMPAT)/.installed
COMPAT_TESTS := tests/test_crewai.py tests/test_mcp.py
ARGS ?=

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	@# the distribution was renamed agentcache -> agentcache-py: drop an old editable install of this checkout
	@$(BIN)/python -m pip uninstall -q -y agentcache 2>/dev/null || true
	$(BIN)/python -m pip install -q -e ".[all]" --group dev --group bench
	@touch $(STAMP)

.PHONY: venv
venv: $(STAMP) ## create .venv and install the package with every extra and the dev tools

$(COMPAT_STAMP): pyproject.toml
	@test -x $(COMPAT)/bin/python || $(PYTHON) -m venv $(COMPAT)
	$(COMPAT)/bin/python -m pip install -q --upgrade "pip>=25.1"
	@# --no-compile: most of CrewAI's dependencies are never imported here; compiling them doubled the install
	$(COMPAT)/bin/python -m pip install -q --no-compile -e ".[openai]" --group compat
	@touch $(COMPAT_STAMP)

.PHONY: venv-compat
venv-compat: $(COMPAT_STAMP) ## create .venv-compat: the package with CrewAI and mcp 1.x (the "compat" group)

.PHONY: redis-server
redis-server: ## make sure a redis-server binary exists (tests start their own on a free port)
	@command -v redis-server >/dev/null || { echo "installing redis-server (apt)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
	  || sudo -n sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server'; }

.PHONY: lint
lint: venv ## ruff check + ruff format --check + the import layering contracts (pyproject.toml)
	$(BIN)/ruff check agentcache tests benchmarks examples
	$(BIN)/ruff format --check agentcache tests benchmarks examples
	$(BIN)/lint-imports

.PHONY: typecheck
typecheck: venv ## mypy --strict on agentcache/ and tests/typing/
	$(BIN)/mypy

.PHONY: test
test: venv redis-server lint typecheck ## bootstrap everything, then lint, type-check and run the test suite
	$(BIN)/pytest $(ARGS)
	@$(MAKE) --no-print-directory test-compat

.PHONY: test-compat
test-compat: venv-compat ## the CrewAI and mcp 1.x tests in .venv-compat (part of `make test`)
	$(COMPAT)/bin/pytest $(COMPAT_TESTS)

.PHONY: demo
demo: venv ## the main job on the embedded store (SQLite in ./.agentcache), no API key, no server; run it twice
	$(BIN)/python examples/demo.py

.PHONY: examples
examples: venv ## run every example as a smoke test (throwaway or project-local stores, never your cache dir)
	@set -e; for f in examples/*.py; do echo "== $$f"; $(BIN)/python $$f; done

.PHONY: bench
bench: venv redis-server ## run the benchmarks; tables land in benchmarks/results/
	$(BIN)/python benchmarks/bench_exact.py
	$(BIN)/python benchmarks/bench_regression.py
	$(BIN)/python benchmarks/bench_long_request.py
	$(BIN)/python benchmarks/bench_sqlite.py
	$(BIN)/python benchmarks/bench_small.py
	$(BIN)/python benchmarks/bench_memo.py
	$(BIN)/python benchmarks/bench_redis.py
	$(BIN)/python benchmarks/bench_start.py
	$(BIN)/python benchmarks/bench_sdk.py
	$(BIN)/python benchmarks/semantic_quality.py
	$(BIN)/python benchmarks/semantic_speed.py
	$(BIN)/python benchmarks/semantic_lookup_speed.py
	$(BIN)/python benchmarks/semantic_chat_speed.py
	$(BIN)/python benchmarks/semantic_redis_sync.py
	$(BIN)/python benchmarks/semantic_cold_start.py
	$(BIN)/python benchmarks/semantic_fill.py --before

.PHONY: fmt
fmt: venv ## format and autofix
	$(BIN)/ruff format agentcache tests benchmarks examples
	$(BIN)/ruff check --fix agentcache tests benchmarks examples

.PHONY: clean
clean: ## remove caches and build output (keeps .venv)
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: help
help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'
