"""The Airflow DAG file: the pipeline `mlops run $MLOPS_AIRFLOW_ARGS` would run (default: the
fraud use case), scheduled by $MLOPS_AIRFLOW_SCHEDULE (default @daily). Put this folder in
Airflow's dags folder (AIRFLOW__CORE__DAGS_FOLDER) of the Airflow environment (`make airflow-setup`).
Parsing it writes nothing; a DAG of your own can build ``RunRequest(...)`` directly."""
import os
import shlex

from cli.run import request_from_argv
from pipelines.runners.airflow import DEFAULT_SCHEDULE, create_dag

dag = create_dag(request_from_argv(shlex.split(os.environ.get("MLOPS_AIRFLOW_ARGS", ""))),
                 schedule=os.environ.get("MLOPS_AIRFLOW_SCHEDULE", DEFAULT_SCHEDULE))
