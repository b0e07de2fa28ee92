"""Two `mlops run` of one pipeline on one home, started 2 s apart: the second waits for the first
(saying for which run), each summary names its own pipeline run, and every pushed version has its
registry version, tagged with the run that pushed it."""
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.home import Home
from release import mlflow_registry

pytestmark = pytest.mark.pipeline

MLOPS = str(Path(sys.executable).with_name("mlops"))
NAME = "fraud"
RUN_LINE = re.compile(rf"^pipeline '{NAME}' run (\S+) ", re.M)


def test_concurrent_runs_take_turns_and_each_reports_and_registers_its_own(tmp_path):
    home = tmp_path / "home"
    command = [MLOPS, "run", "--home", str(home), "--no-edge", "--no-cache"]  # both train and push
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(2)
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    first_out = first.communicate(timeout=600)[0]
    assert first.returncode == 0 and second.returncode == 0, first_out[-2000:] + second.stdout[-2000:]
    (first_run,), (second_run,) = RUN_LINE.findall(first_out), RUN_LINE.findall(second.stdout)
    assert first_run != second_run
    assert f"waiting for run {first_run} " in second.stdout and f"of pipeline {NAME}" in second.stdout
    assert "waiting" not in first_out
    for out in (first_out, second.stdout):  # every component finished, as the run's own report says
        assert "RUNNING" not in out and " ? " not in out and "[pushed]" in out
    pushed = sorted(p.name for p in Home(home).model_base_dir(NAME).iterdir())
    client = mlflow_registry.client_for(Home(home).tracking_uri())
    versions = client.search_model_versions(f"name='{NAME}'")
    assert len(pushed) == 2 and sorted(v.tags[mlflow_registry.SERVING_VERSION_TAG] for v in versions) == pushed
    assert {v.tags[mlflow_registry.PIPELINE_RUN_TAG] for v in versions} == {first_run, second_run}
