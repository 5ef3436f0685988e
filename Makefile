# Fresh machine: `make demo` or `make test`; each runs `setup` first when .venv is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup system-deps demo test bench clean

$(VENV)/.installed: pyproject.toml Makefile
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,txrv,mlflow,wandb]'  # the trackers' extras, so their tests run
	touch $@

setup: system-deps $(VENV)/.installed

system-deps:
	@bash scripts/install_system_deps.sh

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) benchmarks/run_all.py --small

clean:
	rm -rf $(VENV) runs outputs
