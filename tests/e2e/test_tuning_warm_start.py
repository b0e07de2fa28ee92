"""--warm-start continues from the last blessed model; --tune runs TFX's Tuner (KerasTuner oracle)
before the Trainer, whose best values train the model, with each trial an MLflow child run."""
import pytest

from tests.helpers import run_cli_config

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


def _run(home, csv, *args):
    from pipelines.local_runner import run_pipeline

    config = run_cli_config("--data", str(csv), "--label", "is_fraud", "--task", "binary", "--name", "tw",
                            "--hparam", "epochs=15", *args, home=home)
    report = run_pipeline(config)
    assert report.succeeded, report.error
    return config, report


def test_warm_start_loads_the_last_blessed_model(home, transactions_csv):
    _, first = _run(home, transactions_csv)
    assert first.blessed and "warm_start" not in first.model_info
    _, second = _run(home, transactions_csv, "--warm-start")
    assert second.state_of("warm_start_resolver") == "COMPLETE" and second.state_of("Trainer") == "COMPLETE"
    assert second.model_info["warm_start"]["loaded"], second.model_info["warm_start"]
    assert second.model_info["warm_start"]["from"].startswith(str(home))
    # starting from trained weights: the first epoch is already as good as the first run's best
    assert second.history["val_loss"][0] <= min(first.history["val_loss"]) * 1.05
    _, third = _run(home, transactions_csv, "--warm-start", "--hparam", "width=16")
    assert third.model_info["warm_start"] == {"from": third.model_info["warm_start"]["from"], "loaded": False,
                                              "reason": "different architecture hyperparameters"}


def test_tuning_feeds_the_trainer_and_logs_trials(home, transactions_csv):
    from mlflow.tracking import MlflowClient

    config, report = _run(home, transactions_csv, "--tune", "random", "--max-trials", "2")
    assert report.state_of("Tuner") == "COMPLETE"
    client = MlflowClient(tracking_uri=config.home.mlflow_uri)
    children = client.search_runs([client.get_experiment_by_name("tw").experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{report.mlflow_run_id}'")
    assert len(children) == 2
    best = min(children, key=lambda run: run.data.metrics["val_loss"])
    for key, value in best.data.params.items():
        assert str(report.model_info["hparams"][key]) == value, key  # the Trainer used the best values


def test_a_model_under_the_bar_is_refused_and_not_pushed(home, transactions_csv):
    from pipelines.local_runner import format_summary

    versions = sorted((home / "serving" / "tw").iterdir())
    config, report = _run(home, transactions_csv, "--threshold", "0.9999", "--hparam", "epochs=2")
    assert report.blessed is False and report.pushed_path is None
    assert "auc = " in report.blessing_reason and ">= 0.9999" in report.blessing_reason
    assert sorted((home / "serving" / "tw").iterdir()) == versions
    assert "nothing pushed (not blessed)" in format_summary(config, report)
