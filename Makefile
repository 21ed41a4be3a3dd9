# Every target installs first (a no-op when the pins have not changed).
SHELL := /bin/bash
PY := .venv/bin/python
RASA := .venv/bin/rasa
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONPATH := $(CURDIR)

.PHONY: install train demo test lint bench sandbox shell actions widget wheel clean

install:
	@bash scripts/install.sh

train: install
	$(RASA) train --fixed-model-name northwind --out models

demo: install
	$(PY) -m northwind

# Lint, format and type checks first (seconds), then every suite.
test: lint
	$(PY) -m pytest

# Latency, throughput, memory and CPU of floor, bot turn, handoff and relay, one run side by side
# (~10 minutes on 2 cores): a table, bench/results/latest.json and latest.png (README, "Performance").
bench: train
	$(PY) -m bench.run

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

# The distribution as users install it: dist/rasa_flex_handoff-<version>-py3-none-any.whl
# (setuptools' build/ is removed first: files left there from deleted sources would ship.)
wheel: install
	rm -rf build
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation --no-index -w dist .

sandbox: install
	.venv/bin/flex-sandbox

actions: install
	$(RASA) run actions --port 5055

# Rebuild the checked-in widget bundle after editing bot/northwind/widget/src (needs Node.js).
widget:
	cd bot/northwind/widget && npm ci --no-audit --no-fund && npm run build

# Terminal chat; needs the action server (and the sandbox for handoffs): run `make demo` in another terminal.
shell: train
	$(RASA) shell -m models --port 5006 --endpoints endpoints.yml

clean:
	rm -rf models results var .rasa tests/.output dist build
