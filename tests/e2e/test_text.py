"""Free text as a feature (issue 41): a table whose label lives in its reviews' words only. The
preflight reads the column as text, the Transform turns it into word ids inside the served graph,
the model reads it (AUC far above the noise columns' ~0.5) beside the TF-IDF + logistic regression
baseline, and the server answers raw text as the SavedModel does; TF Lite is left out with the reason."""
import numpy as np
import pytest

from tests.helpers import run_cli_config


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """(config, report, csv path) of one run on 600 generated reviews."""
    from pipelines.inputs.synthetic import write_reviews
    from pipelines.runners.local import run_pipeline

    path = write_reviews(tmp_path_factory.mktemp("data") / "reviews.csv", 600)
    config = run_cli_config("--data", str(path), "--label", "recommended", home=tmp_path_factory.mktemp("home"))
    return config, run_pipeline(config, track=False), path


def test_the_words_are_read_as_text_and_carry_the_label(reviews):
    from pipelines.summary import format_summary

    config, report, _ = reviews
    assert config.table.kinds["review"] == "text" and config.table.text_lengths["review"] >= 8
    assert report.blessed and report.pushed_path, report.error
    assert report.metrics["overall"]["auc"] > 0.95
    assert report.baseline["model"] == "TF-IDF + logistic regression"
    assert report.metrics["overall"]["auc"] >= report.baseline["value"] - 0.01
    text = format_summary(config, report)
    assert "read as text (words and word pairs, a vocabulary, an embedding): review (up to" in text
    assert "free text" in text  # why the TF Lite variants are left out
    from release.model_card import build_card

    assert build_card(config, report, timing_runs=1)["data"]["text_columns"] == ["review"]


def test_served_predictions_from_raw_text_equal_the_saved_models(reviews, tmp_path):
    import tensorflow as tf

    from serving.client import Target, model_inputs, model_metadata, predict_rest, request_from_file
    from serving.options import ServerOptions
    from serving.server import start_server

    config, report, path = reviews
    lines = path.read_text().splitlines()
    sample = tmp_path / "rows.csv"
    sample.write_text("\n".join(lines[:9]) + "\n")
    unseen = {"review": "Broken and useless, I want a refund", "stars_shown": 5, "store": "web"}
    server = start_server(config.home.serving_dir, "127.0.0.1", 0, 0, ServerOptions(poll_seconds=0.2))
    try:
        target = Target("127.0.0.1", config.name)
        body, _ = request_from_file(sample, lambda: model_inputs(model_metadata(target, server.rest_port), target))
        served = predict_rest("127.0.0.1", server.rest_port, target, body)["predictions"]
        answer = predict_rest("127.0.0.1", server.rest_port, target, {"instances": [unseen]})["predictions"]
    finally:
        server.stop()
    model = tf.saved_model.load(report.pushed_path).signatures["serving_default"]
    rows = body["instances"]
    direct = model(review=tf.constant([r["review"] for r in rows]),
                   stars_shown=tf.constant([float(r["stars_shown"]) for r in rows], tf.float64),
                   store=tf.constant([r["store"] for r in rows]))["predictions"].numpy()
    np.testing.assert_allclose(np.reshape(served, -1), np.reshape(direct, -1), rtol=1e-5, atol=1e-6)
    assert np.reshape(answer, -1)[0] < 0.5  # the words of a complaint, whatever the stars say
