"""Beam's portable runner for real: Beam's Python job service and an EXTERNAL SDK worker pool
(ops.beam_services, what `make services` starts) on free loopback ports; the default use case runs
through them (StatisticsGen, Transform, Evaluator and the other Beam steps as portable jobs), pushes
a model at least as good as the test's logistic regression on the same split (the yardstick the
DirectRunner run of tests/e2e/test_use_cases.py meets), and leaves nothing in the temp dir; `mlops
score` and `mlops skew` run their Beam pipelines there too; a job asking for 2 SDK workers runs on 2."""
import csv
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from components.gate_metrics import OVERALL
from core.home import Home
from core.run_report import collect
from ops import beam_services
from pipelines.inputs.datasets import USE_CASES
from tests.helpers import fraud_auc_and_baseline

pytestmark = pytest.mark.pipeline

MLOPS = str(Path(sys.executable).with_name("mlops"))
NAME = "fraud"  # the default use case's pipeline


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """The job service and the worker pool, stopped (with the pool's workers) at teardown."""
    started = beam_services.start(tmp_path_factory.mktemp("beam-services"))
    yield started
    beam_services.stop(started)
    assert not any(beam_services.alive(pid) for pid in started.pids)


def _mlops(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    """`mlops ARGS` with its temporary files in ``tmp`` (empty before), which must be empty after."""
    tmp.mkdir()
    done = subprocess.run([MLOPS, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TMPDIR": str(tmp)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    left = [str(p.relative_to(tmp)) for p in tmp.rglob("*")]
    assert left == [], f"left in the temp dir: {left[:10]}"
    return done


def _portable(services) -> list:
    return ["--runner", "portable", "--job-endpoint", services.job_endpoint, "--worker-pool", services.worker_pool]


@pytest.fixture(scope="module")
def run(services, tmp_path_factory):
    """(home, report) of the default job on the portable runner."""
    home = tmp_path_factory.mktemp("home-portable")
    _mlops("run", "--home", str(home), "--no-edge", *_portable(services),
           tmp=tmp_path_factory.mktemp("portable") / "tmp")
    return home, collect(SimpleNamespace(name=NAME, home=Home(home), series_table=None), 0)  # a table, not a series


def test_the_portable_run_pushes_a_model_at_least_as_good_as_the_baseline(run, services):
    home, portable = run
    assert portable.succeeded and portable.blessed and portable.pushed_now, portable.components
    assert {c.state for c in portable.components} == {"COMPLETE"}
    model_auc, baseline_auc, rows = fraud_auc_and_baseline(portable)
    assert model_auc >= baseline_auc - 0.01, (model_auc, baseline_auc)
    assert model_auc == pytest.approx(portable.metrics[OVERALL]["auc"], abs=0.01)  # the portable Evaluator's
    assert portable.split_rows == rows and sum(rows.values()) == 569  # counted by the portable StatisticsGen
    log = next((home / "logs" / NAME).glob("*.log")).read_text()  # absl's INFO lines of the run
    assert "setup_file already includes dependency" in log and "infer TFX Python dependency" not in log
    staged = list(Path(services.folder, "staging").rglob("*workflow.tar.gz"))  # the project, not TFX
    assert staged and all(p.stat().st_size < 5_000_000 for p in staged)
    assert not list(Path(services.folder).rglob("tfx_ephemeral*"))


def test_score_and_skew_run_on_the_portable_runner(run, services, tmp_path):
    home, report = run
    data = home / "data" / NAME / f"{NAME}.csv"
    scored = _mlops("score", NAME, "--home", str(home), "--alias", "challenger", "--data", str(data), "--output",
                    str(tmp_path / "out"), *_portable(services), tmp=tmp_path / "tmp-score")
    assert "scored 569 rows" in scored.stdout
    version = int(Path(report.pushed_path).name)
    _log_requests(tmp_path / "logs", version, data)
    skew = _mlops("skew", NAME, "--home", str(home), "--request-log-dir", str(tmp_path / "logs"),
                  *_portable(services), tmp=tmp_path / "tmp-skew")
    assert f"version {version}: 569 logged request rows" in skew.stdout and "SKEWED" not in skew.stdout


def _log_requests(root: Path, version: int, data: Path) -> None:
    """What `mlops serve --log-requests 1` writes for the use case's rows (its features are numeric)."""
    from serving.runtime.request_log import RequestLogger

    with data.open() as f:
        rows = list(csv.DictReader(f))
    features = [c for c in rows[0] if c not in dict(USE_CASES[NAME].targets)]
    logger = RequestLogger(root, 1.0)
    for start in range(0, len(rows), 50):
        chunk = rows[start:start + 50]
        logger.log_rows(NAME, version, {c: np.array([float(r[c]) for r in chunk], np.float32) for c in features})
    logger.close()
    assert logger.written == len(rows)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_job_runs_on_as_many_sdk_workers_as_it_asks_for(services, tmp_path, workers):
    """--beam-workers N: the job service asks the pool for N workers and splits each stage between
    them (one output shard per worker's bundle after a shuffle)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from core.beam_runners import BeamOptions, beam_temp_dir, pipeline_args

    pool_log = Path(services.folder) / "worker-pool.log"
    started_before = pool_log.read_text().count("Starting worker")
    args = pipeline_args(BeamOptions(runner="portable", job_endpoint=services.job_endpoint,
                                     worker_pool=services.worker_pool, beam_workers=workers))
    with beam_temp_dir(), beam.Pipeline(options=PipelineOptions(list(args))) as pipeline:
        _ = (pipeline | beam.Create(range(1000)) | beam.Reshuffle() | beam.Map(str)
             | beam.io.WriteToText(str(tmp_path / "out" / "part")))
    assert pool_log.read_text().count("Starting worker") - started_before == workers
    shards = sorted((tmp_path / "out").iterdir())
    assert len(shards) == workers and all(shard.stat().st_size > 0 for shard in shards)
    assert sorted(int(line) for shard in shards for line in shard.read_text().split()) == list(range(1000))
