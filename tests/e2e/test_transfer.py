"""Transfer learning and distillation through the pipeline, in one home with MLflow's registry: a
teacher (the photos use case) is registered; a user's folder then trains on its stem and learner
(models:/photos@challenger) and on a Keras application whose weights file the test writes; a small
student distils the teacher and is compared with the same student trained without it."""
import json
from pathlib import Path

import pytest

from tests.helpers import run_cli_config, served_accuracy
from tests.messy_images import photo_folder

pytestmark = pytest.mark.pipeline

SIZE = "32"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    from pipelines.runners.local import run_pipeline

    home = tmp_path_factory.mktemp("home")
    config = run_cli_config("photos", "--image-size", SIZE, "--hparam", "epochs=10", home=home)
    report = run_pipeline(config)
    assert report.blessed and report.model_version, report.error or report.blessing_reason
    return home


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return photo_folder(tmp_path_factory.mktemp("data") / "garden")[0]


def _run(home, *argv):
    from pipelines.runners.local import run_pipeline

    config = run_cli_config(*argv, home=home)
    report = run_pipeline(config)
    assert report.succeeded, report.error
    return config, report


def test_a_registered_model_is_the_base_of_the_next_run(home, folder):
    config, report = _run(home, "--data", str(folder), "--pretrained", "models:/photos@challenger",
                          "--hparam", "epochs=5", "--hparam", "fine_tune_epochs=2", "--no-edge")
    assert config.family == "transfer" and config.images.size == 32  # the base's own size
    assert config.pretrained["version"] == 1
    info = report.model_info
    assert info["transfer"]["base_unchanged_in_head_phase"] is True
    assert info["transfer"]["fine_tune_epochs"] >= 1 and info["transfer"]["unfrozen_layers"] > 0
    assert len(report.history["loss"]) == info["transfer"]["head_epochs"] + info["transfer"]["fine_tune_epochs"]
    assert report.blessed
    description = json.loads((Path(report.pushed_path) / "assets.extra" / "mlops_model.json").read_text())
    assert description["pretrained"]["source"] == "models:/photos@challenger"
    # the yardstick: the base's own family (the CNN) from scratch on the same folder (so the same
    # split: ExampleGen hashes each file's path), as many epochs in all, scored here on the eval rows
    _, scratch = _run(home, "--data", str(folder), "--name", "garden_scratch", "--family", "cnn",
                      "--image-size", SIZE, "--hparam", "epochs=7", "--no-edge")
    transferred, alone = served_accuracy(report), served_accuracy(scratch)
    print("transfer", transferred, "scratch", alone)
    assert transferred >= alone, f"transfer {transferred:.4f} vs the same family from scratch {alone:.4f}"


def test_a_keras_application_from_a_weights_file(home, folder, tmp_path):
    import tf_keras as keras

    weights = tmp_path / "mobilenet_v2_notop.h5"  # these machines cannot download ImageNet's
    keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3),
                                   pooling="avg").save_weights(str(weights))
    config, report = _run(home, "--data", str(folder), "--name", "garden_mobilenet", "--pretrained",
                          "keras:mobilenet_v2", "--weights", str(weights), "--image-size", SIZE,
                          "--fine-tune-layers", "10", "--hparam", "epochs=2", "--hparam", "fine_tune_epochs=1",
                          "--no-edge")
    info = report.model_info
    assert info["pretrained"]["weights"] == str(weights) and info["transfer"]["base_unchanged_in_head_phase"]
    assert 0 < info["transfer"]["unfrozen_layers"] <= 10 and len(report.history["loss"]) == 3


def test_no_weights_and_no_network_is_one_line(home, folder, capsys):
    from cli.main import main

    code = main(["run", "--data", str(folder), "--pretrained", "keras:resnet50", "--home", str(home),
                 "--name", "garden_resnet", "--no-tracking"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "cannot download ImageNet weights for keras:resnet50" in err[0] and "--weights FILE" in err[0]
    code = main(["run", "--data", str(folder), "--pretrained", "keras:resnet50", "--weights", "/no/such.h5",
                 "--home", str(home), "--no-tracking"])
    assert code == 2 and "--weights /no/such.h5: no such file" in capsys.readouterr().err


def test_a_student_learns_from_the_teacher(home):
    from pipelines.summary import format_summary

    student_args = ("--image-size", SIZE, "--hparam", "filters=8", "--hparam", "epochs=10", "--no-edge")
    config, student = _run(home, "photos", "--name", "photos_student", "--distill-from", "models:/photos@challenger",
                           *student_args)
    _, plain = _run(home, "photos", "--name", "photos_plain", *student_args)
    comparison = student.teacher
    assert comparison["teacher"]["parameters"] > 2 * comparison["student"]["parameters"]
    assert comparison["student"]["savedmodel_bytes"] > 0 and comparison["teacher"]["int8_bytes"] > 0
    from release.mlflow_registry import client_for

    name = client_for(config.mlflow_uri).get_run(student.mlflow_run_id).info.run_name
    assert name.startswith("photos_student cnn student of models:/photos@challenger"), name  # what it is
    text = format_summary(config, student)
    assert "distilled (temperature 2, alpha 0.5)" in text and "teacher   accuracy" in text
    with_teacher, without = served_accuracy(student), served_accuracy(plain)  # on the same eval rows, here
    print("student", with_teacher, "alone", without)
    # the claim under test (fixed seeds: the same student, the same split, the teacher the only change)
    assert with_teacher >= without, f"student {with_teacher:.4f} vs the same student alone {without:.4f}"


def test_status_shows_last_runs_aliases_serving_and_alarms(home, capsys):
    """`mlops status` on this module's home (runs above, each tracked): one screen."""
    from cli.main import main

    assert main(["status", "--home", str(home), "--rest-port", "1"]) == 0
    text = capsys.readouterr().out
    assert f"home {home}" in text
    assert "photos: last run " in text and "succeeded, blessed true, pushed " in text
    assert "registry: challenger v1" in text and "waits for `mlops promote photos`" in text
    assert "serving: policy latest" in text and "no server answering" in text
    assert main(["status", "--home", str(home / "nowhere")]) == 2
