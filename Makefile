# One command sets up and runs the default job (`make run`); one runs the tests (`make test`).
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.setup-complete
BIN := $(VENV)/bin

AIRFLOW_VENV := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.setup-complete

KSERVE_VENV := .venv-kserve
KSERVE_STAMP := $(KSERVE_VENV)/.setup-complete

.PHONY: setup airflow-setup kserve-setup run serve promote rollback lint test test-fast bench profile lock clean \
	services services-stop

setup: $(STAMP)

$(STAMP): requirements.lock setup.py infra/requirements.in infra/setup-venv.sh
	bash infra/setup-venv.sh
	touch $@

# Apache Airflow 2.10.3 (TFX 1.16's tested version) in its own venv and lock: infra/airflow/
airflow-setup: $(AIRFLOW_STAMP)

$(AIRFLOW_STAMP): infra/airflow/requirements.lock setup.py infra/setup-venv.sh
	bash infra/setup-venv.sh $(AIRFLOW_VENV) infra/airflow/requirements.lock
	touch $@

# KServe's Python ModelServer (kserve 0.15.2 + TF 2.16.2), the serving bench's anchor: bench/kserve/
kserve-setup: $(KSERVE_STAMP)

$(KSERVE_STAMP): bench/kserve/requirements.lock setup.py infra/setup-venv.sh
	bash infra/setup-venv.sh $(KSERVE_VENV) bench/kserve/requirements.lock
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

# Beam's portable runner here: its job service and a worker pool in the background (infra/services.sh);
# prints the `mlops run --runner portable ...` flags that reach them. SERVICES_DIR=... to keep several.
services: setup
	bash infra/services.sh start

services-stop:
	bash infra/services.sh stop

# pyflakes, import order and line length (infra/ruff.toml); .ci/run runs it before the tests
lint: setup
	$(BIN)/ruff check --config infra/ruff.toml .

# Every tier, on WORKERS processes (pytest-xdist; WORKERS=0: one process); one tier alone:
# make test MARK=unit (component, pipeline, airflow, mlflow_server)
MARK ?=
WORKERS ?= 2
test: setup airflow-setup
	$(BIN)/python -m pytest -c tests/pytest.ini -n $(WORKERS) --dist loadfile --no-loadscope-reorder $(if $(MARK),-m "$(MARK)") tests

# Unit and component tiers: no pipeline runs (a few minutes)
test-fast: setup
	$(BIN)/python -m pytest -c tests/pytest.ini -m "unit or component" tests

# Where a run's time goes: default job cold and cached, a penguin-like tuned job (bench/results/profile.md)
profile: setup
	$(BIN)/python bench/profile_run.py

bench: setup airflow-setup kserve-setup
	$(BIN)/python bench/profile_run.py
	$(BIN)/python bench/penguin_bench.py
	$(BIN)/python bench/pipeline_bench.py
	$(BIN)/python bench/serving_bench.py
	$(BIN)/python bench/batching_bench.py
	$(BIN)/python bench/edge_bench.py
	$(BIN)/python bench/scale_bench.py
	$(BIN)/python bench/train_workers_bench.py
	$(BIN)/python bench/preflight_bench.py
	$(BIN)/python bench/images_bench.py
	$(BIN)/python bench/traffic_bench.py
	$(BIN)/python bench/tables_bench.py
	$(BIN)/python bench/forecast_bench.py
	$(BIN)/python bench/forecast_references.py
	$(BIN)/python bench/text_bench.py
	$(BIN)/python bench/suite_bench.py

# Re-resolve the lock from infra/requirements.in (needs network to PyPI).
lock: setup
	$(BIN)/uv pip compile --quiet --python-version 3.10 --python-platform x86_64-manylinux_2_28 \
		infra/requirements.in -o requirements.lock
	$(BIN)/uv pip compile --quiet --python-version 3.10 --python-platform x86_64-manylinux_2_28 \
		infra/airflow/requirements.in -o infra/airflow/requirements.lock
	$(BIN)/uv pip compile --quiet --python-version 3.10 --python-platform x86_64-manylinux_2_28 \
		bench/kserve/requirements.in -o bench/kserve/requirements.lock

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) $(KSERVE_VENV) .mlops
