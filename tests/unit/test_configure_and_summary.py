"""The config factory (pure apart from reading data: nothing written until prepare_inputs), the
run summary and the MLflow params/metrics/tags of a run, on hand-made reports (no pipeline)."""
from pathlib import Path

import pytest

from components.gate_metrics import OVERALL
from core.run_report import ComponentRun, RunReport
from pipelines.configure import (
    BeamOptions,
    ConfigError,
    ReadingOptions,
    RunRequest,
    build_config,
    parse_hparams,
    parse_targets,
    prepare_inputs,
)
from tests.helpers import write_transactions_csv


def _files(root: Path):
    return sorted(p.relative_to(root) for p in root.rglob("*")) if root.exists() else []


def test_a_use_case_config_writes_nothing_until_prepare_inputs(tmp_path):
    home = tmp_path / "home"
    config = build_config(RunRequest(use_case="housing", home=str(home)))
    assert _files(home) == []  # profiled in memory
    assert config.use_case == "housing" and config.data_path == home / "data" / "housing" / "housing.csv"
    assert config.gate_thresholds["progression"] > 0 and config.family == "dnn"
    prepare_inputs(config)
    assert config.data_path.is_file()
    mtime = config.data_path.stat().st_mtime_ns
    prepare_inputs(config)  # unchanged data keeps its file (TFX's cache fingerprint)
    assert config.data_path.stat().st_mtime_ns == mtime


def test_a_curated_schema_is_pinned_by_content_only_when_prepared(tmp_path):
    csv = write_transactions_csv(tmp_path / "tx.csv")
    schemas = tmp_path / "schemas"
    (schemas / "tx").mkdir(parents=True)
    (schemas / "tx" / "schema.pbtxt").write_text(
        'feature { name: "amount" type: FLOAT }\nfeature { name: "segment" type: BYTES }\n')
    home = tmp_path / "home"
    config = build_config(RunRequest(data=str(csv), label="is_fraud", task="binary", home=str(home),
                                     schemas_dir=str(schemas)))
    assert config.schema_source == schemas / "tx" / "schema.pbtxt" and not config.schema_path.exists()
    prepare_inputs(config)
    assert config.schema_path.read_bytes() == config.schema_source.read_bytes()
    assert config.schema_path.parent.parent == home / "schemas" / "tx"


@pytest.mark.parametrize("request_, message", [
    (RunRequest(use_case="fraud", data="x.csv"), "give either a use case or --data"),
    (RunRequest(data="x.csv", task="binary"), "--data needs --label"),
    (RunRequest(use_case="nope"), "unknown use case 'nope'"),
    (RunRequest(use_case="fraud", family="gbdt"), "unknown model family 'gbdt'"),
    (RunRequest(use_case="fraud", beam=BeamOptions(beam_mode="fast")), "Beam mode 'fast'"),
    (RunRequest(use_case="age_gender", threshold=0.5), "--threshold sets a single-target gate"),
    (RunRequest(use_case="fraud", reading=ReadingOptions(window=2)), "--span and --window need --data DIR"),
    (RunRequest(use_case="sunspots", reading=ReadingOptions(slices=("year",))), "--slice names columns of a table"),
    (RunRequest(use_case="fraud", reading=ReadingOptions(slices=("mean_area",))),
     "--slice column 'mean_area' has more than 20 distinct"),
])
def test_bad_requests_are_one_line_config_errors(tmp_path, request_, message):
    from dataclasses import replace

    with pytest.raises(ConfigError, match=message):
        build_config(replace(request_, home=str(tmp_path / "home")))
    assert _files(tmp_path / "home") == []


def test_hparams_and_targets_parse_or_name_the_argument():
    assert parse_hparams(["epochs=5", " width = 8"]) == {"epochs": "5", "width": "8"}
    with pytest.raises(ConfigError, match="--hparam 'epochs': expected KEY=VALUE"):
        parse_hparams(["epochs"])
    assert parse_targets("a,b", "multilabel") == (("a", "binary"), ("b", "binary"))
    assert parse_targets("a:binary,b:regression", "multitask") == (("a", "binary"), ("b", "regression"))
    with pytest.raises(ConfigError, match="multitask needs COLUMN:TASK pairs"):
        parse_targets("a,b", "multitask")


def _report() -> RunReport:
    return RunReport(
        pipeline="tx", run_id="tx.2026", components=[ComponentRun("CsvExampleGen", "COMPLETE", 2.5, 1),
                                                     ComponentRun("Trainer", "COMPLETE", 10.0, 7)],
        metrics={OVERALL: {"auc": 0.91, "auc_change": 0.02}, "segment=online": {"auc": 0.88}},
        blessed=True, blessing_reason="auc 0.91 >= 0.7", pushed_now=True, pushed_path="/h/serving/tx/17",
        history={"loss": [0.7, 0.5]}, model_info={"hparams": {"width": 8, "epochs": 5}, "parameters": 123},
        edge={"variants": {"int8": {"size_bytes": 2048, "max_abs_diff": 0.01, "metric": "auc", "value": 0.9,
                                    "reference": 0.91, "metric_drop": 0.01, "accepted": True}}})


def test_the_summary_names_components_metrics_blessing_edge_and_push(tmp_path):
    from pipelines.summary import format_summary

    config = build_config(RunRequest(use_case="fraud", home=str(tmp_path / "home")))
    text = format_summary(config, _report())
    assert "pipeline 'fraud' run tx.2026 (binary, family dnn" in text
    assert "CsvExampleGen" in text and "12.5" in text  # the total
    assert "auc" in text and "(+0.0200 vs the last blessed model)" in text and "auc_change" not in text
    assert "blessed: yes (auc 0.91 >= 0.7)" in text
    assert "int8" in text and "2.0 KiB" in text and "shipped" in text
    assert "serving version: /h/serving/tx/17 [pushed]" in text


@pytest.mark.parametrize("chosen_by, windows, how", [
    ("validation", 100, "the lowest MAE on 100 validation windows"),
    ("combination", 1, "base and model averaged: 1 validation window(s), too few to choose by")])
def test_the_summary_says_which_forecast_base_and_share_were_kept(tmp_path, chosen_by, windows, how):
    from dataclasses import replace

    from pipelines.summary import format_summary

    config = build_config(RunRequest(use_case="fraud", home=str(tmp_path / "home")))
    forecast = {"base": "drift on logs", "correction_kept": 0.5, "chosen_by": chosen_by, "validation_windows": windows,
                "validation_mae": {"0.0": 0.9, "0.5": 0.8, "1.0": 0.85}}
    text = format_summary(config, replace(_report(), model_info={"forecast": forecast}))
    assert "forecast base (the lowest error on the train windows): drift on logs\n" in text
    assert (f"share of the learned correction kept: 0.5 ({how}; validation MAE by share: 0.0 0.9000, 0.5 0.8000, "
            "1.0 0.8500)") in text


def test_tracking_params_metrics_and_tags_of_a_run(tmp_path):
    from release.run_files import DataFacts
    from release.tracking import _metrics, _params, run_tags

    config = build_config(RunRequest(use_case="fraud", home=str(tmp_path / "home")))
    facts = DataFacts({"data.span": "0"}, {"data.rows_train": 400.0})
    params = _params(config, _report(), facts)
    assert params["pipeline"] == "fraud" and params["meta.width"] == "8" and params["hparam.epochs"] == "5"
    assert params["model.parameters"] == "123" and params["data.span"] == "0"
    metrics = {(m.key, m.step): m.value for m in _metrics(_report(), facts, now=0)}
    assert metrics[("epoch_loss", 2)] == 0.5 and metrics[("eval_auc", 0)] == 0.91
    assert metrics[("eval/segment:online/auc", 0)] == 0.88 and metrics[("edge_int8_size_bytes", 0)] == 2048
    assert metrics[("data.rows_train", 0)] == 400.0
    tags = run_tags(_report())
    assert tags["blessed"] == "true" and tags["status"] == "succeeded" and tags["edge_int8"] == "shipped"
    assert tags["mlmd_execution_ids"] == "CsvExampleGen=1,Trainer=7"


@pytest.mark.parametrize("model_mae, told", [(58.9, True), (95.0, False)])
def test_a_refused_forecaster_is_told_when_it_beats_seasonal_naive_on_the_holdout(tmp_path, model_mae, told):
    from dataclasses import replace

    from pipelines.summary import format_summary
    from release.forecast_baselines import ForecastScores
    from release.forecast_holdout import HoldoutComparison

    config = build_config(RunRequest(use_case="fraud", home=str(tmp_path / "home")))
    config = replace(config, task_name="forecast", gate_thresholds={config.label: 1.0})  # a forecaster's gate: MAE
    holdout = HoldoutComparison(ForecastScores(model_mae, 66.8, 11.3, 2.3), ForecastScores(92.2, 102.0, 16.8, 3.6),
                                ForecastScores(68.1, 78.3, 12.6, 2.7), ("ETS(M,A,M)",), 1, 1, 8, 4)
    report = replace(_report(), blessed=False, metrics={OVERALL: {"mean_absolute_error": 1.955}}, holdout=holdout)
    text = format_summary(config, report)
    line = (f"the refused model beats seasonal naive on this holdout (MAE {model_mae:.4g} vs 92.2), while its gate's "
            "MASE is 1.955 (bound 1)")
    assert (line in text) is told, text
    assert line not in format_summary(config, replace(report, blessed=True))


def test_the_summary_names_the_columns_read_as_categories_and_how_to_read_one_as_words(tmp_path):
    from pipelines.summary import format_input

    csv = tmp_path / "art.csv"
    titles = ["Sunset over the harbour", "Portrait of a lady", "Study of hands", "The mill at dusk"]
    csv.write_text("title,medium,year\n" + "".join(
        f"{titles[i % 4]} {i},{'oil' if i % 2 else 'ink'},{1800 + i}\n" for i in range(60)))
    config = build_config(RunRequest(data=str(csv), label="year", task="regression", home=str(tmp_path / "home")))
    text = "\n".join(format_input(config))
    assert "read as categories (a vocabulary of values each): medium; --text COL reads one as words" in text
    assert "title" in config.table.text_keys and "year" not in text.split("read as categories")[1]


def test_the_summary_says_how_much_of_a_text_its_window_cuts_and_names_a_blank_column_by_its_place(tmp_path):
    """A probe's breach summaries were cut at 128 words (44% of them longer) and the summary said only
    'up to 128 words'; an unnamed index column was 'column left out:  (...)'."""
    from pipelines.summary import format_input

    csv = tmp_path / "notes.csv"
    notes = [" ".join(f"word{(i * j) % 50}" for j in range(5 + i % 5)) for i in range(59)] + ["long " * 600]
    csv.write_text(",Note Text,size,label\n" + "".join(
        f"{i},{note},{i * 1.5},{i % 2}\n" for i, note in enumerate(notes)))
    config = build_config(RunRequest(data=str(csv), label="label", home=str(tmp_path / "home")))
    text = "\n".join(format_input(config))
    assert "Note Text (up to 512 words; 2% of its values are longer, cut there)" in text, text
    assert "column left out: column 1 (no name) (identifier-like" in text, text
    assert "columns renamed to feature keys: 'Note Text' -> note_text" in text  # not the left-out blank one


@pytest.mark.parametrize("days, windows, few", [(35, "1 train window, 1 validation", True),
                                                 (200, "156 train windows, 11 validation", False)])
def test_a_series_summary_counts_its_windows_and_says_when_they_are_few(tmp_path, days, windows, few):
    from datetime import date, timedelta

    from pipelines.configure import ForecastOptions
    from pipelines.summary import format_input

    path = tmp_path / "visits.csv"
    path.write_text("day,visits\n" + "".join(f"{date(2024, 1, 1) + timedelta(days=d)},{d % 7 + 10}\n"
                                             for d in range(days)))
    config = build_config(RunRequest(data=str(path), label="visits", task="forecast", home=str(tmp_path / "home"),
                                     forecast=ForecastOptions("day", 7)))
    text = "\n".join(format_input(config))
    assert f"the eval targets; {windows}\n" in text, text
    assert ("only 1 train window: the model's correction to its base forecast has little to learn from" in text) is few
    assert "i.e. MASE, below 1 (the default; --threshold to change)" in text
    loose = build_config(RunRequest(data=str(path), label="visits", task="forecast", home=str(tmp_path / "home"),
                                    forecast=ForecastOptions("day", 7), threshold=1.5))
    assert "i.e. MASE, below 1.5 (--threshold)" in "\n".join(format_input(loose))  # it said 'below 1' whatever


@pytest.mark.parametrize("hparams, tfidf", [({}, True), ({"text_learner": "pool"}, False),
                                            ({"text_learner": "lstm"}, False)])
def test_only_the_tfidf_text_learner_gets_tfidf_weights_from_the_transform(tmp_path, hparams, tfidf):
    """The default learner keeps the Transform's JSON (its cache key) as it was; another drops the weights."""
    from pipelines.inputs.synthetic import write_reviews

    path = write_reviews(tmp_path / "reviews.csv", 60)
    config = build_config(RunRequest(data=str(path), label="recommended", home=str(tmp_path / "home"),
                                     hparams=hparams))
    column = config.transform_spec().columns["review"]
    assert column.kind == "text" and column.tfidf is tfidf
    assert ('"tfidf"' in config.transform_spec().to_json()) is not tfidf


@pytest.mark.parametrize("started, line", [
    ({"from": "/m", "loaded": True}, "warm start: from the last blessed model's weights"),
    ({"from": "/m", "loaded": False, "reason": "different inputs"},
     "warm start: not possible (different inputs from the last blessed model); trained from scratch")])
def test_the_summary_says_what_warm_start_did(tmp_path, started, line):
    """A probe's --warm-start run trained from scratch (its columns changed) and nothing said so."""
    from dataclasses import replace

    from pipelines.summary import format_summary

    config = build_config(RunRequest(use_case="fraud", home=str(tmp_path / "home")))
    assert line in format_summary(config, replace(_report(), model_info={"warm_start": started}))
