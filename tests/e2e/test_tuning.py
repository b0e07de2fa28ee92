"""--tune runs TFX's Tuner (KerasTuner oracle) before the Trainer, whose best values train the
model, with each trial an MLflow child run; a model under the bar is not pushed. (--warm-start is
exercised by the scheduled span runs in test_spans.py.)"""
import pytest

from tests.helpers import run_cli_config

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


def _run(home, csv, *args):
    from pipelines.runners.local import run_pipeline

    config = run_cli_config("--data", str(csv), "--label", "is_fraud", "--task", "binary", "--name", "tw",
                            "--hparam", "epochs=15", *args, home=home)
    report = run_pipeline(config)
    assert report.succeeded, report.error
    return config, report


def test_tuning_feeds_the_trainer_and_logs_trials(home, transactions_csv):
    from mlflow.tracking import MlflowClient

    config, report = _run(home, transactions_csv, "--tune", "random", "--max-trials", "2")
    assert report.state_of("Tuner") == "COMPLETE"
    client = MlflowClient(tracking_uri=config.home.mlflow_uri)
    children = client.search_runs([client.get_experiment_by_name("tw").experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{report.mlflow_run_id}'")
    assert len(children) == 2
    best = min(children, key=lambda run: run.data.metrics["val_loss"])
    assert best.data.params and set(best.data.params) <= set(report.model_info["hparams"]), best.data.params
    for key, value in best.data.params.items():
        assert str(report.model_info["hparams"][key]) == value, key  # the Trainer used the best values


def test_a_model_under_the_bar_is_refused_and_not_pushed(home, transactions_csv):
    from pipelines.summary import format_summary

    versions = sorted((home / "serving" / "tw").iterdir())
    config, report = _run(home, transactions_csv, "--threshold", "0.9999", "--hparam", "epochs=2")
    assert report.blessed is False and report.pushed_path is None
    assert "auc = " in report.blessing_reason and ">= 0.9999" in report.blessing_reason
    assert sorted((home / "serving" / "tw").iterdir()) == versions
    assert "nothing pushed (not blessed)" in format_summary(config, report)
