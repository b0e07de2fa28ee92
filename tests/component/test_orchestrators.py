"""The same create_pipeline() compiled for Kubeflow Pipelines v2 / Vertex (TFX's
KubeflowV2DagRunner): every component, its parameters and the remote locations; and the nodes a
span layout adds (its Airflow run is tests/e2e/test_airflow.py)."""
import json

import pytest

from cli.main import main

ROOT = "gs://bucket/mlops"
DATA = "gs://bucket/data/fraud/fraud.csv"
NODES = {"CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "AnomaliesGate", "Transform", "Trainer",
         "Evaluator", "EdgeExport", "Pusher"}


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    out = tmp_path_factory.mktemp("kfp") / "fraud.json"
    home = tmp_path_factory.mktemp("kfp-home")
    assert main(["compile", "--kubeflow", "--output", str(out), "--pipeline-root", ROOT, "--data-uri", DATA,
                 "--home", str(home), "--image", "registry.example/composable-mlops:1", "--beam-mode",
                 "multi_processing", "--beam-workers", "2"]) == 0
    return json.loads(out.read_text())


def _parameters(spec, task: str) -> dict:
    parameters = spec["pipelineSpec"]["root"]["dag"]["tasks"][task]["inputs"].get("parameters", {})
    return {k: next(iter(v["runtimeValue"]["constantValue"].values())) for k, v in parameters.items()}


def test_every_component_is_a_task_run_in_the_project_image(spec):
    pipeline = spec["pipelineSpec"]
    assert pipeline["pipelineInfo"]["name"] == "fraud" and pipeline["schemaVersion"] == "2.0.0"
    tasks = set(pipeline["root"]["dag"]["tasks"])
    assert NODES <= tasks and any(t.startswith("baseline_resolver") for t in tasks)
    containers = {name: e["container"] for name, e in pipeline["deploymentSpec"]["executors"].items()
                  if "container" in e}
    assert len(containers) >= len(NODES), sorted(containers)
    for name, container in containers.items():
        assert container["image"] == "registry.example/composable-mlops:1", name
    gate = pipeline["deploymentSpec"]["executors"]["AnomaliesGate_executor"]["container"]["args"]
    assert "components.validation.AnomaliesGate_Executor" in gate
    assert "--direct_running_mode=multi_processing" in gate and "--direct_num_workers=2" in gate


def test_locations_are_under_the_remote_root(spec):
    assert spec["runtimeConfig"]["gcsOutputDirectory"] == f"{ROOT}/pipelines/fraud"
    example_gen = _parameters(spec, "CsvExampleGen")
    assert example_gen["input_base"] == "gs://bucket/data/fraud"
    assert json.loads(example_gen["input_config"])["splits"][0]["pattern"] == "fraud.csv"
    assert _parameters(spec, "Pusher") == {"base_directory": f"{ROOT}/serving/fraud", "model_name": "fraud"}
    trainer = _parameters(spec, "Trainer")
    assert trainer["run_fn"] == "components.trainer.run_fn"
    assert json.loads(trainer["custom_config"])["backup_root"] == f"{ROOT}/training-backups/fraud"


def test_transform_and_evaluator_carry_the_config(spec):
    transform = _parameters(spec, "Transform")
    assert transform["preprocessing_fn"] == "components.transform.preprocessing_fn"
    assert json.loads(transform["custom_config"])["targets"] == [["malignant", "binary"]]
    eval_config = json.loads(_parameters(spec, "Evaluator")["eval_config"])
    auc = next(m for m in eval_config["metrics_specs"][0]["metrics"] if m["class_name"] == "AUC")
    overall = auc["per_slice_thresholds"][0]
    assert overall["slicing_specs"] == [{}] and overall["threshold"]["value_threshold"]["lower_bound"] == 0.7
    assert eval_config["model_specs"][0]["signature_name"] == "serving_tf_example"


def test_compile_needs_a_root_uri(tmp_path, capsys):
    assert main(["compile", "--kubeflow", "--output", str(tmp_path / "x.json"), "--pipeline-root", "bucket",
                 "--data-uri", DATA, "--home", str(tmp_path)]) == 2
    assert "--pipeline-root 'bucket'" in capsys.readouterr().err


def test_span_folders_build_the_drift_gate_and_window_and_are_not_compiled_for_kubeflow(tmp_path, capsys):
    from pipelines.inputs.synthetic import write_spans
    from pipelines.pipeline import create_pipeline
    from tests.helpers import run_cli_config

    write_spans(tmp_path / "daily", spans=2, rows=40)
    args = ("--data", str(tmp_path / "daily"), "--label", "is_fraud", "--task", "binary")
    config = run_cli_config(*args, "--span", "1", "--window", "2", home=tmp_path / "home")
    nodes = {node.id: node for node in create_pipeline(config).components}
    assert {"previous_span_resolver", "DriftGate", "span_window_resolver"} <= set(nodes)
    example_gen = nodes["CsvExampleGen"]
    staged = tmp_path / "home" / "data" / "daily" / "input"  # ExampleGen reads the staged spans, same layout
    assert example_gen.exec_properties["input_base"] == str(staged)
    assert config.table.source == tmp_path / "daily" / "span-1" and (staged / "span-1" / "data.csv").is_file()
    assert '"pattern": "span-{SPAN}/*.csv"' in example_gen.exec_properties["input_config"]
    static = json.loads(example_gen.exec_properties["range_config"])["static_range"]
    assert static == {"start_span_number": 1, "end_span_number": 1}
    assert nodes["span_window_resolver"].exec_properties["source_uri"] == {"num_spans": 2}  # TFX: its config
    assert nodes["DriftGate"] in nodes["Transform"].upstream_nodes
    newest = run_cli_config(*args, home=tmp_path / "home")
    assert create_pipeline(newest).components[0].exec_properties["range_config"] is None
    assert main(["compile", "--kubeflow", "--output", str(tmp_path / "x.json"), "--pipeline-root", ROOT,
                 "--data-uri", "gs://b/daily", *args, "--home", str(tmp_path / "home")]) == 2
    assert "Kubeflow v2 cannot compile" in capsys.readouterr().err


def test_vertex_trainer_replicas_are_in_the_compiled_spec(tmp_path, capsys):
    """`--trainer-replicas 3 --trainer-machine TYPE`: TFX's Vertex AI Trainer with a chief pool and
    a pool of 2 workers of that machine in the project's image; run_fn reads its own keys only."""
    from components.specs import TrainSpec

    out = tmp_path / "vertex.json"
    base = ["compile", "--kubeflow", "--output", str(out), "--pipeline-root", ROOT, "--data-uri", DATA, "--home",
            str(tmp_path / "home"), "--image", "registry.example/composable-mlops:1", "--trainer-replicas", "3",
            "--trainer-machine", "n1-highmem-8"]
    assert main(base) == 2
    assert "--trainer-replicas needs --vertex-project and --vertex-region" in capsys.readouterr().err
    assert main([*base, "--vertex-project", "team-ml", "--vertex-region", "europe-west4"]) == 0
    config = json.loads(_parameters(json.loads(out.read_text()), "Trainer")["custom_config"])
    pools = config["ai_platform_training_args"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 2]
    assert {p["machine_spec"]["machine_type"] for p in pools} == {"n1-highmem-8"}
    assert {p["container_spec"]["image_uri"] for p in pools} == {"registry.example/composable-mlops:1"}
    assert config["ai_platform_enable_vertex"] is True and config["ai_platform_vertex_region"] == "europe-west4"
    assert config["ai_platform_training_args"]["project"] == "team-ml"
    assert TrainSpec.from_dict(config).backup_root == f"{ROOT}/training-backups/fraud"
