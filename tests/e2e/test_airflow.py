"""Apache Airflow: the DAG file infra/airflow/mlops_dag.py (TFX's AirflowDagRunner over the same
create_pipeline()) runs once end to end with `airflow dags test`, in the Airflow environment
(.venv-airflow, its own lock: `make airflow-setup`), on tiny data; the run is logged to MLflow."""
import os
import re
import shlex
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from tests.helpers import DNN_ALONE

pytestmark = [pytest.mark.pipeline, pytest.mark.airflow]

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / ".venv-airflow" / "bin" / "airflow"
NAME = "airflow_fraud"
TASKS = ("prepare_inputs", "CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "AnomaliesGate",
         "Transform", "Trainer", "baseline_resolver", "Evaluator", "Pusher", "mlflow_tracking")


def _airflow_env(tmp_path: Path, run_args) -> dict:
    return {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",  # importing TFX takes longer than 30 s on a busy machine
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "infra" / "airflow"),
            "MLOPS_AIRFLOW_ARGS": shlex.join(run_args), "MLOPS_AIRFLOW_SCHEDULE": "@hourly"}


def test_parsing_the_dag_file_writes_nothing(tmp_path):
    """Airflow parses DAG files in every scheduler loop and task process: a built-in use case's data
    and the home are written by the DAG's first task, never by parsing."""
    assert AIRFLOW.exists(), f"{AIRFLOW}: missing; `make airflow-setup` creates it (`make test` does)"
    home = tmp_path / "home"
    env = _airflow_env(tmp_path, ["housing", "--home", str(home)])
    code = ("from airflow.models import DagBag; import os; "
            "bag = DagBag(os.environ['AIRFLOW__CORE__DAGS_FOLDER'], include_examples=False); "
            "assert not bag.import_errors, bag.import_errors; "
            "print(sorted(t.task_id for t in bag.dags['housing'].tasks))")
    python = AIRFLOW.with_name("python")
    result = subprocess.run([str(python), "-c", code], env=env, capture_output=True, text=True, timeout=600,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'prepare_inputs'" in result.stdout and "'Trainer'" in result.stdout
    assert not home.exists(), sorted(str(p) for p in home.rglob("*"))


def test_the_dag_runs_once_end_to_end_and_is_tracked(tmp_path, transactions_csv):
    from mlflow.tracking import MlflowClient

    assert AIRFLOW.exists(), f"{AIRFLOW}: missing; `make airflow-setup` creates it (`make test` does)"
    home = tmp_path / "home"
    run_args = ["--data", str(transactions_csv), "--label", "is_fraud", "--task", "binary", "--name", NAME,
                "--home", str(home), "--no-edge", "--hparam", "epochs=5", *DNN_ALONE]
    env = _airflow_env(tmp_path, run_args)
    migrate = subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    result = subprocess.run([str(AIRFLOW), "dags", "test", NAME], env=env, capture_output=True, text=True,
                            timeout=1200)
    log = result.stdout + result.stderr
    assert result.returncode == 0 and f"dag_id={NAME}" in log and "state=success" in log, log[-5000:]
    succeeded = set(re.findall(r"Marking task as SUCCESS\. dag_id=\w+, task_id=(\w+)", log))
    assert succeeded == set(TASKS), set(TASKS) ^ succeeded
    interval = re.search(r"data_interval_start=([\d\- :+]+), data_interval_end=([\d\- :+]+)", log)
    start, end = (datetime.fromisoformat(value.strip()) for value in interval.groups())
    assert (end - start).total_seconds() == 3600  # the schedule given to the DAG

    pushed = list((home / "serving" / NAME).iterdir())
    assert len(pushed) == 1 and (pushed[0] / "saved_model.pb").exists()
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name(NAME).experiment_id])
    assert run.data.tags["status"] == "succeeded" and run.data.tags["blessed"] == "true"
    assert run.data.tags["pushed_version"] == str(pushed[0]) and run.data.metrics["eval_auc"] > 0.9
    assert run.data.tags["pipeline_run_id"].startswith(f"{NAME}.manual__")
