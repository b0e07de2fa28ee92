"""The Airflow DAG file: the pipeline `mlops run $MLOPS_AIRFLOW_ARGS` would run (default: the
fraud use case), scheduled by $MLOPS_AIRFLOW_SCHEDULE (default @daily). Put this folder in
Airflow's dags folder (AIRFLOW__CORE__DAGS_FOLDER) of the Airflow environment (`make airflow-setup`)."""
import os
import shlex

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow loads (see README)

from pipelines.airflow_runner import DEFAULT_SCHEDULE, create_dag  # noqa: E402

dag = create_dag(shlex.split(os.environ.get("MLOPS_AIRFLOW_ARGS", "")),
                 schedule=os.environ.get("MLOPS_AIRFLOW_SCHEDULE", DEFAULT_SCHEDULE))
