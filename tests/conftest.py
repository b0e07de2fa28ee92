"""Shared fixtures. Tests sit by layer: unit/ (no TensorFlow graph work), component/ (TF, TFT, no
pipeline), e2e/ (real TFX pipelines on Beam, ML Metadata and MLflow in SQLite, one shared run)."""
import os

# Each of `make test`'s xdist workers gets its share of the cores for TensorFlow's thread pools (set
# before TensorFlow loads; subprocesses inherit it). Two workers with two threads each on 2 cores
# measured 12% more CPU and 10% more wall than one thread each (two photo runs side by side: 340 vs
# 299 s of CPU, 199 vs 180 s wall): four busy threads on two cores spin and preempt one another.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", _THREADS)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", _THREADS)

import components  # noqa: E402,F401 (sets the legacy-Keras switch before TensorFlow loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.helpers import DNN_ALONE, TRANSACTIONS, run_cli_config, write_transactions_csv  # noqa: E402

# By folder, in the order the tiers run: the longest first, so short tests fill the workers' tails.
TIERS = {"e2e": pytest.mark.pipeline, "component": pytest.mark.component, "unit": pytest.mark.unit}
# Before them, the modules that take longest, longest first (by module, summed from a CI run's durations
# on 2026-12-06, docs/suite-times.md: photos ~200 s, transfer ~143, use cases ~137, team stores ~108, the
# portable runner ~93, promotion ~90, forecasts ~85, tables ~78, every table ~73, two training workers ~68,
# digits ~68, spans ~62, images ~61). xdist hands whole modules out in this order (`make test` passes
# --no-loadscope-reorder: by default xdist sorts modules by their number of tests, which sent the 3-test
# photo module out last, alone for ~7 minutes); a long module left for last holds the other worker idle.
HEAVIEST_MODULES = ("e2e/test_use_cases_photos.py", "e2e/test_transfer.py", "e2e/test_use_cases.py",
                    "e2e/test_team_stores.py", "e2e/test_portable_runner.py", "e2e/test_promotion.py",
                    "e2e/test_forecast.py", "e2e/test_tables.py", "e2e/test_every_table.py",
                    "e2e/test_train_workers.py", "e2e/test_use_cases_digits.py", "e2e/test_spans.py",
                    "e2e/test_images.py")


def pytest_collection_modifyitems(items):
    """Each test gets its tier's marker from its folder, so `-m unit` (or component, pipeline) runs one tier.

    `make test` runs on two pytest-xdist workers with --dist loadfile: a module's tests share its
    pipeline runs through module fixtures, so a module goes to one worker whole. The end-to-end tier
    runs first, its heaviest modules before it (a stable sort: each module stays contiguous)."""
    rank = {folder: position for position, folder in enumerate(TIERS)}
    heavy = {name: position for position, name in enumerate(HEAVIEST_MODULES)}
    order = {}
    for item in items:
        path = Path(str(item.fspath))
        tier = TIERS.get(path.parent.name)
        if tier is not None:
            item.add_marker(tier)
        order[item] = heavy.get(f"{path.parent.name}/{path.name}", len(heavy)), rank.get(path.parent.name, len(rank))
    items.sort(key=order.__getitem__)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test fails: each test checks a claim of the docs, and a check that did
    not run proves nothing (`.ci/run` installs what the skipping tests need, e.g. Chromium)."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every claimed check must run: {reason}"


@pytest.fixture(scope="session")
def transactions_csv(tmp_path_factory) -> Path:
    return write_transactions_csv(tmp_path_factory.mktemp("data") / "transactions.csv")


@pytest.fixture(scope="session")
def transactions_runs(tmp_path_factory, transactions_csv):
    """(home, config, cold run, cached rerun) of the transactions pipeline: the model the pipeline,
    serving and promotion tests share (one training per session)."""
    from pipelines.runners.local import run_pipeline

    home = tmp_path_factory.mktemp("home")
    config = run_cli_config("--data", str(transactions_csv), "--label", "is_fraud", "--task", "binary",
                            "--name", TRANSACTIONS, "--hparam", "epochs=40", *DNN_ALONE, home=home)
    first = run_pipeline(config)
    second = run_pipeline(config)
    return home, config, first, second


@pytest.fixture
def started(monkeypatch):
    """serve_forever replaced: what `mlops serve` would start with, without starting it."""
    import serving.server

    calls = []
    monkeypatch.setattr(serving.server, "serve_forever", lambda *args, **kwargs: calls.append(args))
    return calls
