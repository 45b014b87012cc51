# Two entry points: `make demo` runs Gatehold in front of the demo app,
# `make test` runs the whole suite (lint, types, unit, integration, browser).
# Both set up what they need: a virtualenv, and Debian packages when missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
APT_PACKAGES := chromium clamav-daemon nginx-light caddy
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test check lint types unit system-deps bench bench-quick bench-deps soak clean fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	# httpbin 0.10.4 pins greenlet<3 on Python 3.11, which clashes with playwright;
	# it does not need greenlet at run time, so it is installed without its pins.
	$(BIN)/pip install -q --no-deps 'httpbin==0.10.4'
	touch $(STAMP)

NODE_TOOLS := tests/support/node/node_modules/.package-lock.json

# Node.js tools the tests run, pinned in package-lock.json: the OpenID Provider of the
# sign-in tests (oidc-provider) and the accessibility checker (axe-core).
$(NODE_TOOLS): tests/support/node/package-lock.json | system-deps
	npm ci --prefix tests/support/node --no-audit --no-fund --loglevel=error
	touch $(NODE_TOOLS)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# `make demo PORT=9000 APP_PORT=9001`: the gateway's port, and the demo app Ledger's
# (0: any free port).
PORT     ?= 8080
APP_PORT ?= 0

demo: $(STAMP)
	$(BIN)/gatehold demo --port $(PORT) --app-port $(APP_PORT)

check: $(STAMP)
	$(BIN)/ruff format --check gateway admin_ui tests bench
	$(BIN)/ruff check gateway admin_ui tests bench
	$(BIN)/mypy --strict gateway admin_ui

# Two workers, whole files each: most tests wait on sockets, browsers and subprocesses.
# Compiled once up front: the hundreds of processes the tests start (the CLI, serve)
# then load bytecode, even where PYTHONDONTWRITEBYTECODE keeps them from writing it.
test: $(STAMP) system-deps $(NODE_TOOLS) check
	$(BIN)/python -m compileall -q gateway admin_ui tests bench > /dev/null
	$(BIN)/pytest -n 2 --dist loadfile --durations=20

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# `make fuzz`: the long randomized runs (not part of `make test`, which runs short
# bounded versions of both). The reference model of the rules (tests/fuzz/) against a
# live gateway: 100,000 random requests, every disagreement printed with its rules,
# exit 1 on any. Then the ingress canonicalizer under atheris for FUZZ_SECONDS.
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run_model --requests 100000
	$(BIN)/python -m tests.fuzz.ingress_target -max_total_time=$(FUZZ_SECONDS) \
		-dict=tests/fuzz/ingress.dict -print_final_stats=1

bench-deps: $(STAMP)
	VENV_BIN=$(BIN) sh bench/setup.sh

bench: $(STAMP) bench-deps
	$(BIN)/python bench/run.py

bench-quick: $(STAMP) bench-deps
	$(BIN)/python bench/run.py --quick

# Mixed traffic against `gatehold serve --workers 2` (not part of `make test`):
# `make soak MINUTES=1` for a short run. Results in bench/results/soak-<time>/.
soak: $(STAMP) bench-deps
	$(BIN)/python bench/soak.py --minutes $(or $(MINUTES),10)

clean:
	rm -rf $(VENV) var test-artifacts tests/support/node/node_modules
