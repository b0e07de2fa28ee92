"""Apache Airflow: the same ``create_pipeline()`` as an Airflow DAG (TFX's AirflowDagRunner), one
Airflow task per component, on a schedule; a first task writes the run's inputs (``prepare_inputs``)
and a last task logs the run to MLflow. Building the DAG writes nothing: Airflow parses DAG files
often, in every scheduler loop and task process.

Airflow runs in its own environment (``make airflow-setup``: .venv-airflow from
infra/airflow/requirements.lock); infra/airflow/mlops_dag.py is the DAG file Airflow loads.
"""
import datetime
import functools
import time
from typing import Any, Dict, Optional

from core.config import PipelineConfig
from pipelines.configure import RunRequest, build_config

PREPARE_TASK = "prepare_inputs"
TRACKING_TASK = "mlflow_tracking"
DEFAULT_SCHEDULE = "@daily"


def dag_config(schedule: str = DEFAULT_SCHEDULE, start_date: Optional[datetime.datetime] = None) -> Dict[str, Any]:
    """Airflow DAG arguments: one run at a time, no backfill of missed intervals (each run takes the
    newest span anyway)."""
    return {"schedule": schedule, "start_date": start_date or datetime.datetime(2026, 1, 1),
            "catchup": False, "max_active_runs": 1, "tags": ["mlops", "tfx"]}


def create_dag(request: RunRequest, schedule: str = DEFAULT_SCHEDULE):
    """The DAG of the pipeline that ``mlops run`` would run locally for the same request."""
    from airflow.operators.python import PythonOperator
    from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig

    from pipelines.pipeline import create_pipeline

    config = build_config(request)
    dag = AirflowDagRunner(AirflowPipelineConfig(airflow_dag_config=dag_config(schedule))).run(create_pipeline(config))
    component_tasks = list(dag.tasks)
    prepare = PythonOperator(task_id=PREPARE_TASK, python_callable=functools.partial(prepare_dag_run, config),
                             dag=dag)
    prepare.set_downstream([task for task in component_tasks if not task.upstream_list])
    tracking = PythonOperator(task_id=TRACKING_TASK, python_callable=functools.partial(track_dag_run, config),
                              trigger_rule="all_done", dag=dag)  # failed runs are tracked too
    tracking.set_upstream(component_tasks)
    return dag


def prepare_dag_run(config: PipelineConfig, **context) -> None:
    """The DAG's first task: the writes ``mlops run`` makes before its pipeline (nothing returned:
    Airflow would try to store a return value as an XCom)."""
    from pipelines.configure import prepare_inputs

    prepare_inputs(config)


def track_dag_run(config: PipelineConfig, **context) -> None:
    """Reads this DAG run back from ML Metadata and logs it to MLflow, as ``mlops run`` does."""
    from core.run_report import collect
    from pipelines.runners.local import add_baseline, track_run
    from pipelines.summary import format_summary

    started = context["dag_run"].start_date
    since_ms = int(started.timestamp() * 1000) - 1000 if started else int(time.time() * 1000) - 86_400_000
    report = collect(config, since_ms)
    failed = [c.node for c in report.components if c.state == "FAILED"]
    if failed:
        report.error = f"failed: {', '.join(failed)}"
    if report.metrics:
        add_baseline(config, report)
    track_run(config, report)
    print(format_summary(config, report), flush=True)
