"""The production serving manifests run the official TF Serving image on the same base dir and
models.config as `mlops serve`, with the same metrics path and batching knobs."""
import re
from pathlib import Path

import pytest
import yaml

from serving.api.tfserving_rest import METRICS_PATH
from serving.options import ServerOptions
from serving.runtime import model_config

INFRA = Path(__file__).resolve().parents[2] / "infra"


def _serving_api_version() -> str:
    text = (INFRA / "requirements.in").read_text()
    return re.search(r"^tensorflow-serving-api==([\d.]+)", text, re.M).group(1)


def _flags(args) -> dict:
    return dict(arg.removeprefix("--").split("=", 1) for arg in args)


def _containers():
    compose = yaml.safe_load((INFRA / "serving" / "compose.yaml").read_text())["services"]["tf-serving"]
    documents = list(yaml.safe_load_all((INFRA / "serving" / "k8s.yaml").read_text()))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    config_map = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
    return [("compose", compose["image"], compose["working_dir"], _flags(compose["command"])),
            ("k8s", container["image"], container["workingDir"], _flags(container["args"]))], config_map


@pytest.mark.parametrize("index", [0, 1])
def test_manifests_serve_the_shared_models_config(index):
    where, image, working_dir, flags = _containers()[0][index]
    assert image == f"tensorflow/serving:{_serving_api_version()}", where
    assert flags["model_config_file"] == f"/models/{model_config.CONFIG_FILE}", where
    assert working_dir == "/models", where  # relative base_path entries resolve against it
    assert (flags["port"], flags["rest_api_port"]) == ("8500", "8501")
    assert flags["enable_model_warmup"] == "true" and flags["enable_batching"] == "true"


def test_metrics_and_batching_configs_match_our_server():
    _, config_map = _containers()
    for text in ((INFRA / "serving" / "monitoring.config").read_text(), config_map["monitoring.config"]):
        assert f'path: "{METRICS_PATH}"' in text and "enable: true" in text
    defaults = ServerOptions()
    for text in ((INFRA / "serving" / "batching.config").read_text(), config_map["batching.config"]):
        assert f"max_batch_size {{ value: {defaults.max_batch_size} }}" in text
        assert f"batch_timeout_micros {{ value: {int(defaults.batch_timeout_ms * 1000)} }}" in text


def test_written_base_paths_are_relative_to_the_config_dir(tmp_path):
    path = model_config.config_path(tmp_path)
    model_config.ensure_model(path, "fraud")
    (model,) = model_config.read(path).model_config_list.config
    assert model.base_path == "fraud"
    assert model_config.resolve_base_path(model, Path("/models")) == Path("/models/fraud")


def _workflow_commands():
    import shlex

    workflow = yaml.safe_load((INFRA / "ci" / "train-and-promote.yml").read_text())
    steps = workflow["jobs"]["train-and-promote"]["steps"]
    commands = []
    for step in steps:
        for line in step.get("run", "").replace(";", "\n").splitlines():
            words = shlex.split(line.replace("$MODEL", "fraud").replace("$GITHUB_STEP_SUMMARY", "summary.md"))
            if ".venv/bin/mlops" in words:
                words = words[words.index(".venv/bin/mlops") + 1:]
                commands.append(words[:words.index(">>")] if ">>" in words else words)
    return workflow, steps, commands


def test_ci_workflow_trains_then_promotes_with_commands_the_cli_accepts():
    from cli.main import build_parser as parser

    workflow, steps, commands = _workflow_commands()
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as true
    assert {"schedule", "push", "workflow_dispatch"} <= set(triggers)
    assert any(s.get("with", {}).get("python-version") == "3.10" for s in steps)
    assert [c[0] for c in commands] == ["run", "promote", "history"]
    for command in commands:
        parser().parse_args(command)  # exits on an option the CLI does not have
    assert "summary.md" in commands[1]  # the promotion table becomes the job summary
    assert any(s.get("run") == "make setup" for s in steps)  # the same locked setup as README and CI


def test_makefile_promote_and_rollback_targets_call_the_cli():
    makefile = (INFRA.parent / "Makefile").read_text()
    assert "$(BIN)/mlops promote $(NAME)" in makefile and "$(BIN)/mlops rollback $(NAME)" in makefile


def test_under_ci_a_skipped_check_fails_and_ci_makes_chromium_present(tmp_path):
    """tests/conftest.py turns a skip into a failure when CI=true; outside CI a skip stays a skip.
    .ci/run sets CI=true and stops when Chromium (the model card's browser test) cannot be installed."""
    import os
    import subprocess
    import sys

    (tmp_path / "test_claim.py").write_text("import pytest\n\n\ndef test_claim():\n    pytest.skip('no tool')\n")
    root = INFRA.parent

    def run(ci):
        env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER_COUNT")}
        env.update({"CI": ci} if ci else {})
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
                               "-q", "--rootdir", str(tmp_path), str(tmp_path / "test_claim.py")],
                              cwd=root, env=env, capture_output=True, text=True, timeout=300)
    ci = run("true")
    assert ci.returncode == 1 and "1 failed" in ci.stdout, ci.stdout[-2000:]
    assert "skipped under CI=true, where every claimed check must run: Skipped: no tool" in ci.stdout
    local = run(None)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout[-2000:]
    script = (root / ".ci" / "run").read_text()
    assert "export CI=true" in script and "apt-get install -y -q chromium" in script and "exit 1" in script
