# One command sets up and runs the default job (`make run`); one runs the tests (`make test`).
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.setup-complete
BIN := $(VENV)/bin

.PHONY: setup run serve promote rollback test test-fast bench lock clean

setup: $(STAMP)

$(STAMP): requirements.lock setup.py infra/requirements.in infra/setup-venv.sh
	bash infra/setup-venv.sh
	touch $@

run: setup
	$(BIN)/mlops run

# TF Serving's REST (8501) and gRPC (8500) APIs over the pushed models of ./.mlops
serve: setup
	$(BIN)/mlops serve

# The CI gate on the last run's challenger (NAME=fraud by default); see infra/ci/train-and-promote.yml
NAME ?= fraud
promote: setup
	$(BIN)/mlops promote $(NAME)

rollback: setup
	$(BIN)/mlops rollback $(NAME)

test: setup
	$(BIN)/python -m pytest -c tests/pytest.ini tests

test-fast: setup
	$(BIN)/python -m pytest -c tests/pytest.ini -m "not pipeline" tests

bench: setup
	$(BIN)/python bench/pipeline_bench.py
	$(BIN)/python bench/serving_bench.py
	$(BIN)/python bench/edge_bench.py
	$(BIN)/python bench/scale_bench.py

# Re-resolve the lock from infra/requirements.in (needs network to PyPI).
lock: setup
	$(BIN)/uv pip compile --quiet --python-version 3.10 --python-platform x86_64-manylinux_2_28 \
		infra/requirements.in -o requirements.lock

clean:
	rm -rf $(VENV) .mlops
