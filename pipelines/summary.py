"""The run summary `mlops run` prints: components with status and seconds, gate metrics, blessing,
edge variants, what was pushed and registered."""
from typing import Any, List, Mapping

from components.gate_metrics import MIN_SLICE_ROWS, OVERALL
from core.config import PipelineConfig
from core.run_report import RunReport, candidates_shown
from pipelines.configure import FORECAST_GATE
from serving.codec.periods import FORMAT_SHOWN

FEW_TRAIN_WINDOWS = 10  # fewer and a series' learned correction mostly fits noise (the Trainer keeps a share of it)


def format_edge(edge: dict) -> List[str]:
    """One line per TF Lite variant: shipped with its size and parity, or left out and why."""
    if edge.get("error"):
        return [f"edge (TF Lite): no variant shipped, every one left out: {edge['error']} "
                "(the served model does not depend on them)"]
    lines = [f"edge (TF Lite) variants, parity with the SavedModel on {edge.get('parity_on', 'the eval split')}:"]
    for variant, entry in edge.get("variants", {}).items():
        if not entry.get("size_bytes"):
            lines.append(f"  {variant:<14} left out: {entry.get('reason', '')}")
            continue
        metric = (f"{entry['metric']} {entry['value']:.4f} (SavedModel {entry['reference']:.4f})"
                  if entry.get("metric") else "")
        facts = f"{entry['size_bytes'] / 1024:7.1f} KiB  max|diff| {entry['max_abs_diff']:.1e}  {metric}"
        verdict = "shipped" if entry.get("accepted") else f"left out: {entry.get('reason', '')}"
        lines.append(f"  {variant:<14} {facts}  {verdict}")
    return lines


def format_drift_check(drift: dict, name) -> str:
    """One line on the drift gate's check of an accepted span."""
    if drift.get("previous_span") is None:
        return "drift: not checked (no earlier accepted span)"
    if drift.get("note"):
        return f"drift: not checked ({drift['note']})"
    largest = max(drift["features"], key=lambda row: (row["distance"] or 0) / row["threshold"])
    defaults = (" (default comparators: `mlops schema NAME` writes a curated schema that overrides them)"
                if drift.get("default_comparators") else "")
    return (f"drift vs {name(drift['previous_span'])}: {len(drift['features'])} features within their thresholds "
            f"(closest: {largest['feature']} {largest['distance'] or 0:.4f} of {largest['threshold']:g}){defaults}")


def _first_few(items: List[str], shown: int = 12) -> str:
    """The first ``shown`` items, and how many more there are: a line per table, however wide."""
    more = f" (+{len(items) - shown} more)" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _share(share: float) -> str:
    """A share as a message says it: '44%', or '<1%' for a few values of many."""
    return f"{share:.0%}" if share >= 0.005 else "<1%"


def format_input(config: PipelineConfig) -> List[str]:
    """What the preflight made of a user's table: how it was read, names, roles, the task."""
    if config.images is not None:
        return format_images(config)
    if config.series_table is not None:
        return format_series(config.series_table, config.gate_thresholds[config.label])
    table = config.table
    if table is None:
        return []
    label_names = ", ".join(config.labels_shown)
    lines = [f"data: {table.source} ({table.description}; {table.rows} rows; staged for ExampleGen as "
             f"{table.staged})",
             f"task: {config.task_name} ({table.task_reason}); label: {label_names}"]
    if table.label_missing:
        lines.append(f"rows left out: {table.label_missing} with no label")
    if table.renamed:
        shown = _first_few([f"{name!r} -> {key}" for name, key in table.renamed.items()])
        lines.append(f"columns renamed to feature keys: {shown}")
    for key, why in table.left_out.items():
        lines.append(f"column left out: {table.shown(key)} ({why})")
    special = [f"{table.name_of(k)}: {kind}{' ' + table.date_formats[k] if k in table.date_formats else ''}"
               for k, kind in table.kinds.items() if kind in ("boolean", "datetime")]
    if special:
        lines.append(f"read as: {', '.join(special)}")
    texts = [f"{table.name_of(k)} (up to {table.text_lengths[k]} words"
             + (f"; {_share(table.text_cut[k])} of its values are longer, cut there)" if k in table.text_cut else ")")
             for k in table.text_keys]
    if texts:
        tokens = ("words", "words and word pairs", "words, word pairs and triples")[table.text_ngrams - 1]
        lines.append(f"read as text ({tokens}, a vocabulary, an embedding): {', '.join(texts)}")
    categories = [table.name_of(k) for k, kind in table.kinds.items()
                  if kind == "string" and k not in config.label_names]
    if categories:  # a title or a remark under the text rule's bar lands here: say so, and how to change it
        lines.append(f"read as categories (a vocabulary of values each): {_first_few(categories)}; "
                     "--text COL reads one as words")
    sliced = ", ".join(table.name_of(key) for key in config.slice_features) or "none"
    lines.append(f"evaluation slices: {sliced} (--slice COL,... to choose)")
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def format_series(spec, bound: float) -> List[str]:
    """What the preflight made of a user's series (core.config.SeriesSpec); ``bound``: the gate's."""
    keyed = f" keyed by {', '.join(spec.series_id)}" if spec.series_id else ""
    lines = [f"data: {spec.source} ({_count(spec.rows, 'row')}; {spec.series} series{keyed}; time '{spec.time}' read "
             f"as {FORMAT_SHOWN[spec.time_format]}, {spec.frequency}, season {spec.season})",
             f"forecast: '{spec.label}', {_count(spec.horizon, 'step')} from {spec.lookback} (lookback: "
             f"{spec.lookback_reason}); split by time: each series' last {_count(spec.horizon, 'point')} "
             f"{'is the eval target' if spec.horizon == 1 else 'are the eval targets'}; "
             f"{_count(spec.train_windows, 'train window')}, {spec.validation_windows} validation",
             "gate: the eval MAE of windows scaled by their own seasonal naive error, i.e. MASE, below "
             f"{bound:g} ({'--threshold' if bound != FORECAST_GATE else 'the default; --threshold to change'})"]
    if spec.known_ahead:
        lines.insert(2, f"known ahead of each forecast step: {spec.known_ahead}")
    if spec.unread:
        lines.insert(1, f"columns not read: {_first_few(list(spec.unread))} (a forecast reads --time, --label, "
                        "--series-id and --covariates; series in columns are a long table's rows)")
    if spec.train_windows < FEW_TRAIN_WINDOWS:
        lines.insert(2, f"only {_count(spec.train_windows, 'train window')}: the model's correction to its base "
                        "forecast has little to learn from, so the forecast is mostly the base (a longer history, or "
                        "a shorter --lookback or --horizon, gives it more)")
    if spec.filled:
        lines.insert(1, f"filled by interpolation: {spec.filled} missing points (first: {spec.first_gap})")
    if spec.trimmed:
        lines.insert(1, f"left out: {spec.trimmed} rows with no value before a series' first value or after its last")
    return lines


def format_images(config: PipelineConfig) -> List[str]:
    from pipelines.inputs.image_folders import classes_line, describe_skipped

    images = config.images
    where = f"CSV of paths, column '{images.image_column}'" if images.layout == "csv" else "class folders"
    lines = [f"data: {images.source} ({where}; {images.images} images; staged for ExampleGen as {images.staged})",
             f"task: {config.task_name}; label: {', '.join(config.label_names)}"]
    if images.classes:
        lines.append(f"classes: {classes_line(images.classes)}")
    lines.append(f"images resized to {images.size}x{images.size} ({images.size_reason}); augmentation: "
                 f"{', '.join(images.augment) or 'none'}")
    lines.extend(describe_skipped(images.skipped))
    return lines


def format_teacher(comparison: dict) -> List[str]:
    """Student and teacher, one line each: accuracy, parameters, sizes, TF Lite latency."""
    lines = [f"distilled (temperature {comparison['temperature']:g}, alpha {comparison['alpha']:g}); "
             "on this eval split:"]
    for role in ("teacher", "student"):
        facts = comparison[role]
        accuracy = next((v for k, v in facts.items() if k.endswith("accuracy") or k == "auc"), None)
        parts = [f"  {role:<8}", f"accuracy {accuracy:.4f}" if accuracy is not None else "",
                 f"{facts['parameters']:,} parameters", f"SavedModel {facts['savedmodel_bytes'] / 1024:.0f} KiB"]
        if "int8_bytes" in facts:
            parts.append(f"int8 TF Lite {facts['int8_bytes'] / 1024:.1f} KiB, "
                         f"batch 1 p50 {facts['int8_p50_us']:.0f} us")
        lines.append("  ".join(p for p in parts if p))
    return lines


def format_spans(config: PipelineConfig, report: RunReport) -> List[str]:
    """The span a span-folder run read, its training window and the drift check."""
    if not (config.span_pattern and "span" in report.input_properties):
        return []
    from pipelines.inputs.spans import span_name

    names = [span_name(config.span_pattern, span) for span in report.training_spans]
    root = config.table.source.parent if config.table else config.data_path  # the user's folder, not the staged one
    lines = [f"input: {root}/{span_name(config.span_pattern, report.input_properties['span'])}"
             + (f"; training window: {', '.join(names)}" if names else "")]
    if report.drift:
        lines.append(format_drift_check(report.drift, lambda span: span_name(config.span_pattern, span)))
    return lines


def format_components(report: RunReport) -> List[str]:
    lines = [f"  {'component':<24} {'status':<9} {'seconds':>8}"]
    lines += [f"  {c.node:<24} {c.state:<9} {c.seconds:>8.1f}" for c in report.components]
    lines += [f"  {name:<34} {seconds:>8.1f}" for name, seconds in report.after_steps]  # the run takes them too
    total = sum(c.seconds for c in report.components) + sum(seconds for _, seconds in report.after_steps)
    lines.append(f"  {'total':<34} {total:>8.1f}")
    if report.anomalies:
        lines.append(report.anomalies)
    elif report.error:
        lines.append(f"FAILED: {report.error.splitlines()[0] if report.error else ''}")
    return lines


def format_evaluation(report: RunReport) -> List[str]:
    """The eval metrics and their change vs the baseline model, the scikit-learn baseline, the
    blessing and why, and the slices too small to judge."""
    lines = []
    overall = report.metrics.get(OVERALL, {})
    if overall:
        sample = report.eval_rows
        sampled = f"; a uniform sample of {sample['used']:,} of its {sample['rows']:,} rows" \
            if sample and sample["used"] < sample["rows"] else ""
        lines.append(f"eval metrics (eval split{sampled}):")
        for name, value in sorted(overall.items()):
            if not name.endswith("_change"):
                change = overall.get(f"{name}_change")
                versus = f"  ({change:+.4f} vs the last blessed model)" if change is not None else ""
                lines.append(f"  {report.metric_label(name):<28} {value:>10.4f}{versus}")
    if report.baseline_skipped:
        lines.append(f"not compared with the last blessed model: {report.baseline_skipped}")
    if report.baseline.get("value") is not None:
        b = report.baseline
        mine = overall.get(b["metric"])
        versus = f" (the model: {mine:.4f})" if mine is not None else ""
        lines.append(f"baseline on the same split, {b['model']}: {b['metric']} {b['value']:.4f}{versus}")
    candidates = candidates_shown(report.model_info.get("candidates"))
    if candidates:
        lines.append(f"model candidates: {candidates}")
    forecast = report.model_info.get("forecast")
    if forecast:
        lines += _forecast_model_lines(forecast)
    started = report.model_info.get("warm_start")
    if started:  # --warm-start: said either way, as a run from scratch is not what was asked
        lines.append("warm start: from the last blessed model's weights" if started.get("loaded") else
                     f"warm start: not possible ({started.get('reason', '?')} from the last blessed model); "
                     "trained from scratch")
    if report.blessed is not None:
        lines.append(f"blessed: {'yes' if report.blessed else 'no'} ({report.blessing_reason})")
    unjudged = report.unjudged_slices
    if unjudged:
        shown = ", ".join(f"{name} ({rows} rows)" for name, rows in unjudged.items())
        lines.append(f"slices not judged (fewer than {MIN_SLICE_ROWS} eval rows; shown, never gated): {shown}")
    return lines


def _forecast_model_lines(forecast: Mapping[str, Any]) -> List[str]:
    """A user's series: the base the Transform chose and the share of the model's correction kept."""
    windows = forecast["validation_windows"]
    how = (f"the lowest MAE on {windows} validation windows" if forecast["chosen_by"] == "validation" else
           f"base and model averaged: {windows} validation window(s), too few to choose by")
    shares = ", ".join(f"{share} {mae:.4f}" for share, mae in forecast["validation_mae"].items())
    return [f"forecast base (the lowest error on the train windows): {forecast['base']}",
            f"share of the learned correction kept: {forecast['correction_kept']:g} ({how}; validation MAE by "
            f"share: {shares})"]


def format_release(config: PipelineConfig, report: RunReport) -> List[str]:
    """What was pushed, tracked, registered and written, and where the libraries' output went."""
    lines = []
    if report.pushed_path:
        state = "pushed" if report.pushed_now else "unchanged (cached run, nothing new pushed)"
        lines.append(f"serving version: {report.pushed_path} [{state}]")
    elif report.blessed is False:
        lines.append("serving version: nothing pushed (not blessed)")
    if report.mlflow_run_id:
        lines.append(f"mlflow run: {report.mlflow_run_id} ({config.mlflow_uri})")
    if report.model_version:
        lines.append(f"registered: {config.name} version {report.model_version} (alias challenger; "
                     f"`mlops promote {config.name}` gates it)")
    if report.tracking_error:
        lines.append(f"mlflow tracking failed: {report.tracking_error} (pipeline artifacts are intact)")
    if report.card_path:
        lines.append(f"model card: {report.card_path} (`mlops card {config.name}`; in MLflow as model_card/)")
    elif report.card_error:
        lines.append(f"model card: not written ({report.card_error})")
    if report.log_path:
        lines.append(f"log: {report.log_path} (TensorFlow, Beam and absl output; --verbose shows it as it comes)")
    return lines


def format_summary(config: PipelineConfig, report: RunReport) -> str:
    lines: List[str] = [f"pipeline '{config.name}' run {report.run_id or '?'}"
                        f" ({config.task_name}, family {config.family}, home {config.home.root})"]
    lines += format_input(config) + format_spans(config, report) + format_components(report)
    lines += format_evaluation(report)
    if report.edge:
        lines += format_edge(report.edge)
    if report.teacher:
        lines += format_teacher(report.teacher)
    if report.holdout is not None:
        from release.forecast_holdout import comparison_lines, gate_notes

        lines += comparison_lines(report.holdout) + gate_notes(report, config.task.gate_metric,
                                                               config.gate_thresholds.get(config.label))
    return "\n".join(lines + format_release(config, report))
