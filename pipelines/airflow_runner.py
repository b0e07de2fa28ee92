"""Apache Airflow: the same ``create_pipeline()`` as an Airflow DAG (TFX's AirflowDagRunner), one
Airflow task per component, on a schedule, plus a last task that logs the run to MLflow.

Airflow runs in its own environment (``make airflow-setup``: .venv-airflow from
infra/airflow/requirements.lock); infra/airflow/mlops_dag.py is the DAG file Airflow loads.
"""
import datetime
import time
from typing import Any, Dict, List, Optional

TRACKING_TASK = "mlflow_tracking"
DEFAULT_SCHEDULE = "@daily"


def dag_config(schedule: str = DEFAULT_SCHEDULE, start_date: Optional[datetime.datetime] = None) -> Dict[str, Any]:
    """Airflow DAG arguments: one run at a time, no backfill of missed intervals (each run takes the
    newest span anyway)."""
    return {"schedule": schedule, "start_date": start_date or datetime.datetime(2026, 1, 1),
            "catchup": False, "max_active_runs": 1, "tags": ["mlops", "tfx"]}


def create_dag(run_args: List[str], schedule: str = DEFAULT_SCHEDULE):
    """The DAG of the pipeline that ``mlops run RUN_ARGS`` would run locally."""
    from airflow.operators.python import PythonOperator
    from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig

    from pipelines.cli import build_config, parser
    from pipelines.pipeline import create_pipeline

    config = build_config(parser().parse_args(["run", *run_args]))
    dag = AirflowDagRunner(AirflowPipelineConfig(airflow_dag_config=dag_config(schedule))).run(create_pipeline(config))
    component_tasks = list(dag.tasks)
    tracking = PythonOperator(task_id=TRACKING_TASK, python_callable=track_dag_run, op_args=[run_args],
                              trigger_rule="all_done", dag=dag)  # failed runs are tracked too
    tracking.set_upstream(component_tasks)
    return dag


def track_dag_run(run_args: List[str], **context) -> None:
    """Reads this DAG run back from ML Metadata and logs it to MLflow, as ``mlops run`` does."""
    from pipelines.cli import build_config, parser
    from pipelines.local_runner import format_summary, track_run
    from pipelines.report import collect

    config = build_config(parser().parse_args(["run", *run_args]))
    started = context["dag_run"].start_date
    since_ms = int(started.timestamp() * 1000) - 1000 if started else int(time.time() * 1000) - 86_400_000
    report = collect(config, since_ms)
    failed = [c.node for c in report.components if c.state == "FAILED"]
    if failed:
        report.error = f"failed: {', '.join(failed)}"
    track_run(config, report)
    print(format_summary(config, report), flush=True)
