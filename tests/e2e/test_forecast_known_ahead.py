"""Known-ahead features of a user's series, end to end: a generated daily table of two shops whose
sales follow the weekday, the year and a promotion planned ahead (`--covariates promo`). The run
reads the calendar parts and the covariate for each forecast step, beats seasonal naive on the
holdout, and is served: a request carries the window, the first forecast date and the promotion over
window and horizon; REST, gRPC, `mlops predict` (a history whose future rows hold the promotions) and
the TF Lite model equal the SavedModel's forecast, and a planned promotion raises the forecast of its day."""
import csv
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_cli_config

pytestmark = pytest.mark.pipeline

HORIZON, DAYS = 14, 400


@pytest.fixture(scope="module")
def promoted(tmp_path_factory):
    from pipelines.inputs.synthetic import write_promo_sales
    from pipelines.runners.local import run_pipeline

    home, data = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("series")
    path = write_promo_sales(data / "shops.csv", DAYS)
    config = run_cli_config("--data", str(path), "--task", "forecast", "--label", "sales", "--time", "day",
                            "--horizon", str(HORIZON), "--series-id", "shop", "--covariates", "Promo",
                            "--name", "shops", home=home)
    return config, run_pipeline(config, track=False), path


def test_calendar_and_covariate_are_read_and_the_model_beats_seasonal_naive(promoted):
    from pipelines.summary import format_summary
    from serving.codec.periods import read_series_info

    config, report, _ = promoted
    assert report.succeeded and report.blessed and report.pushed_now, report.error
    spec = config.series_table
    assert (spec.frequency, spec.calendar, spec.covariates) == ("daily", "daily", (("Promo", "promo"),))
    assert "known ahead of each forecast step: calendar (weekday, place in the year); covariates Promo" in \
        format_summary(config, report)
    holdout = report.holdout
    assert holdout.model.mase < 1.0 and holdout.model.mae < holdout.seasonal_naive.mae, holdout
    info = read_series_info(report.pushed_path)
    assert set(info.inputs()) == {"window", "next_date", "promo"} and info.covariates == (("Promo", "promo"),)


def _history(path: Path, out: Path, cut: int) -> None:
    """The table without each shop's last ``cut`` sales; its promotions for the next days stay."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    last_day = (date(2023, 1, 1) + timedelta(days=DAYS - 1 - cut)).isoformat()
    for row in rows:
        if row["day"] > last_day:
            row["sales"] = ""
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["shop", "Promo", "day", "sales"])  # another column order
        writer.writeheader()
        writer.writerows(r for r in rows if r["day"] <= (date(2023, 1, 1) + timedelta(days=DAYS - 1)).isoformat())


def test_rest_and_mlops_predict_send_date_and_promotions_and_the_promotion_counts(promoted, tmp_path, capsys):
    import tensorflow as tf

    from cli.main import main
    from serving.client import ClientError, Target, model_inputs, model_metadata, predict_grpc, predict_rest
    from serving.codec.periods import read_series_info
    from serving.forecast_client import forecast_request, read_history
    from serving.options import ServerOptions
    from serving.server import start_server

    config, report, path = promoted
    info = read_series_info(report.pushed_path)
    _history(path, tmp_path / "history.csv", cut=HORIZON)
    windows = read_history(tmp_path / "history.csv", info)
    body = forecast_request(windows, info)
    assert [row["next_date"] for row in body["instances"]] == ["2024-01-22"] * 2
    signature = tf.saved_model.load(report.pushed_path).signatures["serving_default"]

    def saved_model(rows):
        return signature(window=tf.constant([r["window"] for r in rows], tf.float32),
                         next_date=tf.constant([r["next_date"] for r in rows]),
                         promo=tf.constant([r["promo"] for r in rows], tf.float32))["forecast"].numpy()

    expected = saved_model(body["instances"])
    flipped = [dict(row, promo=[*row["promo"][:info.lookback], *[0.0] * HORIZON]) for row in body["instances"]]
    flipped[0]["promo"][info.lookback + 3] = 1.0  # one planned promotion, on the 4th step of the first shop
    moved = saved_model(flipped)
    base = saved_model([dict(row, promo=[*row["promo"][:info.lookback], *[0.0] * HORIZON]) for row in flipped])
    assert moved[0, 3] > base[0, 3] * 1.1, (moved[0], base[0])  # the promotion raises its day's forecast
    server = start_server(config.home.serving_dir, "127.0.0.1", 0, 0, ServerOptions(poll_seconds=0.2))
    try:
        target = Target("127.0.0.1", "shops")
        rest = [row["forecast"] for row in predict_rest("127.0.0.1", server.rest_port, target, body)["predictions"]]
        by_column = {"instances": [{"Promo" if k == "promo" else k: v for k, v in row.items()}
                                   for row in body["instances"]]}  # the covariate as the CSV names it
        named = [row["forecast"] for row in predict_rest("127.0.0.1", server.rest_port, target,
                                                         by_column)["predictions"]]
        inputs, _ = model_inputs(model_metadata(target, server.rest_port, server.grpc_port), target)
        grpc = [row["forecast"] for row in predict_grpc("127.0.0.1", server.grpc_port, target, body,
                                                          inputs)["predictions"]]
        bad_dates = []  # by position, the graph would fail on each, or read the last one as a date
        for bad in ("2024-1-22", "", "01/22/2024", "2024-13-45"):
            wrong = {"instances": [dict(row, next_date=bad) for row in body["instances"]]}
            with pytest.raises(ClientError) as over_rest:
                predict_rest("127.0.0.1", server.rest_port, target, wrong)
            with pytest.raises(ClientError) as over_grpc:
                predict_grpc("127.0.0.1", server.grpc_port, target, wrong, inputs)
            bad_dates.append((str(over_rest.value), str(over_grpc.value)))
        first = body["instances"][0]
        gap = {"instances": [dict(first, window=[float("nan"), *np.reshape(first["window"], -1)[1:].tolist()])]}
        with pytest.raises(ClientError) as nan_rest:  # it answered 200 with a forecast of NaN (not JSON)
            predict_rest("127.0.0.1", server.rest_port, target, gap)
        with pytest.raises(ClientError) as nan_grpc:
            predict_grpc("127.0.0.1", server.grpc_port, target, gap, inputs)
        capsys.readouterr()
        assert main(["predict", "--model", "shops", "--rest-port", str(server.rest_port),
                     str(tmp_path / "history.csv")]) == 0
        printed = capsys.readouterr().out.splitlines()
        _history(path, tmp_path / "short.csv", cut=HORIZON)
        lines = (tmp_path / "short.csv").read_text().splitlines()
        (tmp_path / "short.csv").write_text("\n".join(line for line in lines if "2024-02-03" not in line) + "\n")
        assert main(["predict", "--model", "shops", "--rest-port", str(server.rest_port),
                     str(tmp_path / "short.csv")]) == 2
        refused = capsys.readouterr().err
    finally:
        server.stop()
    np.testing.assert_allclose(rest, expected, rtol=1e-5)
    np.testing.assert_allclose(named, expected, rtol=1e-5)
    np.testing.assert_allclose(grpc, expected, rtol=1e-5)
    for bad, (over_rest, over_grpc) in zip(("2024-1-22", "", "01/22/2024", "2024-13-45"), bad_dates):
        message = f"next_date: {bad!r} is not a date as YYYY-MM-DD"
        assert "HTTP 400" in over_rest and message in over_rest, over_rest
        assert "INVALID_ARGUMENT" in over_grpc and message in over_grpc, over_grpc
    for refusal in (str(nan_rest.value), str(nan_grpc.value)):
        assert "window: nan at row 0, point 0 is not a number; a forecaster reads every point" in refusal, refusal
    assert printed[0] == "shop,day,forecast" and printed[1].startswith("north,2024-01-22,")
    served = np.array([float(line.split(",")[2]) for line in printed[1:]]).reshape(2, HORIZON)
    np.testing.assert_allclose(served, expected, rtol=1e-4)
    assert "has no row at 2024-02-03 for column 'Promo'; the 14 rows after the last value give" in refused
    # TF Lite: the host turns next_date into a day number; the model computes the calendar parts
    model = Path(report.pushed_path) / "tflite" / "float32.tflite"
    assert main(["edge", "predict", str(model), str(tmp_path / "history.csv")]) == 0
    edge = np.array([float(line.split(",")[2]) for line in capsys.readouterr().out.splitlines()[1:]])
    np.testing.assert_allclose(edge.reshape(2, HORIZON), expected, rtol=1e-4)
