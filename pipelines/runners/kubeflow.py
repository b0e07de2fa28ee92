"""Kubeflow Pipelines v2 / Vertex AI Pipelines: the same ``create_pipeline()`` compiled by TFX's
KubeflowV2DagRunner into a pipeline spec JSON (submit it with the KFP client or Vertex AI).

Every path is a URI under one root (the home's layout) and the input is where the data was
uploaded; each step runs in ``image``, which must hold this project (infra/kubeflow/Dockerfile).
"""
from pathlib import Path

from core.config import Locations, PipelineConfig

DEFAULT_IMAGE = "composable-mlops:latest"  # infra/kubeflow/Dockerfile builds it


def compile_kubeflow(config: PipelineConfig, output: Path, root: str, data_uri: str,
                     image: str = DEFAULT_IMAGE) -> Path:
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kfp_v2

    from pipelines.pipeline import create_pipeline, latest_blessed_baseline

    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    runner = kfp_v2.KubeflowV2DagRunner(config=kfp_v2.KubeflowV2DagRunnerConfig(default_image=image),
                                        output_dir=str(output.parent), output_filename=output.name)
    runner.run(create_pipeline(config, Locations.remote(config, root, data_uri), latest_blessed_baseline))
    return output
