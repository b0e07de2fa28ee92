"""A model card for every blessed model: one JSON document and one self-contained HTML page (inline
CSS and SVG, no script, nothing fetched) built from what the run already knows: purpose, data,
model, evaluation, edge variants, lineage and caveats. Written into the pushed SavedModel's
``assets.extra/`` (so it travels with the model to any TF Serving), logged to the MLflow run, and
shown by `mlops card`."""
import html
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from components.gate_metrics import HIGHER_IS_BETTER, MIN_SLICE_ROWS, OVERALL
from core.config import PipelineConfig
from core.run_report import RunReport, candidates_shown
from release.forecast_holdout import gate_notes

ASSETS_DIR = "assets.extra"
CARD_JSON = "model_card.json"
CARD_HTML = "model_card.html"
SECTIONS = ("purpose", "data", "model", "evaluation", "edge", "lineage", "caveats")
TITLES = {"purpose": "Purpose", "data": "Data", "model": "Model", "evaluation": "Evaluation",
          "edge": "Edge variants (TF Lite)", "lineage": "Lineage", "caveats": "Caveats"}


def _gate(config: PipelineConfig, report: RunReport) -> List[Dict[str, Any]]:
    """Per target: the gate metric's name in TFMA's metrics (and as the summary shows it), the bound
    and the direction."""
    from components.tasks import get_task

    multi = len(config.targets) > 1
    gates = []
    for (label, task), shown in zip(config.targets, config.labels_shown):
        metric = get_task(task).gate_metric
        gates.append({"label": shown, "metric": f"{label}/{metric}" if multi else metric,
                      "name": report.metric_label(metric),
                      "bound": config.gate_thresholds.get(label), "max_drop": config.max_metric_drop,
                      "higher_is_better": HIGHER_IS_BETTER.get(metric, True)})
    return gates


def _slices(report: RunReport, gates: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    rows, unjudged = [], report.unjudged_slices
    for name, values in sorted(report.metrics.items(), key=lambda item: (item[0] != OVERALL, item[0])):
        for gate in gates:
            if gate["metric"] not in values:
                continue
            count = report.slice_rows(name)
            rows.append({"slice": name, "metric": report.metric_label(gate["metric"]), "value": values[gate["metric"]],
                         "change_vs_baseline": values.get(f"{gate['metric']}_change"), "rows": count,
                         "gated": name not in unjudged})
    return rows


def _edge(report: RunReport, timing_runs: int) -> List[Dict[str, Any]]:
    from serving.edge_runtime import bench

    variants = []
    for name, entry in report.edge.get("variants", {}).items():
        row = {"variant": name, "shipped": bool(entry.get("accepted")), "size_bytes": entry.get("size_bytes"),
               "max_abs_diff": entry.get("max_abs_diff"), "metric": entry.get("metric"), "value": entry.get("value"),
               "reference": entry.get("reference"), "reason": entry.get("reason", ""), "p50_us": None}
        path = Path(report.pushed_path or "") / "tflite" / entry.get("file", f"{name}.tflite")
        if row["shipped"] and path.is_file() and timing_runs:
            row["p50_us"] = bench(path, runs=timing_runs)["p50_us"]
        variants.append(row)
    return variants


def _caveats(config: PipelineConfig, report: RunReport, slices: Sequence[Mapping[str, Any]],
             edge: Sequence[Mapping[str, Any]]) -> List[str]:
    caveats = []
    for split, features in sorted(report.anomalies_found.items()):
        if features:
            caveats.append(f"ExampleValidator found anomalies in the {split} split ({', '.join(features)}); the "
                           "run went on (only a curated schema stops a run)")
    for row in slices:
        if not row["gated"]:
            caveats.append(f"slice {row['slice']}: not judged: {row['rows']:.0f} eval rows (< {MIN_SLICE_ROWS}); "
                           "shown, not gated")
    baseline = report.baseline
    overall = report.metrics.get(OVERALL, {})
    if baseline.get("value") is not None and baseline["metric"] in overall:
        mine, theirs = overall[baseline["metric"]], baseline["value"]
        better = mine >= theirs if HIGHER_IS_BETTER.get(baseline["metric"], True) else mine <= theirs
        if not better:
            caveats.append(f"a {baseline['model']} on the same split scores {theirs:.4f} {baseline['metric']}, "
                           f"better than this model's {mine:.4f}")
    caveats += gate_notes(report, config.task.gate_metric, config.gate_thresholds.get(config.label))
    by_reason: Dict[str, List[str]] = {}  # one caveat per reason (an export that fails as a whole leaves all out)
    for row in edge:
        if not row["shipped"]:
            by_reason.setdefault(row["reason"], []).append(row["variant"])
    caveats.extend(f"TF Lite {', '.join(variants)} left out: {reason}" for reason, variants in by_reason.items())
    examples = sum(report.split_rows.values())
    if examples and examples < 1000:
        unit = _example_unit(config)
        caveats.append(f"small data: {examples} {unit} in all; metrics on {report.split_rows.get('eval', 0)} eval "
                       f"{unit} are noisy")
    if report.eval_rows and report.eval_rows["used"] < report.eval_rows["rows"]:
        caveats.append(f"evaluated on a uniform sample of {report.eval_rows['used']:,} of the eval split's "
                       f"{report.eval_rows['rows']:,} rows")
    if report.tracking_error:
        caveats.append(f"MLflow tracking failed: {report.tracking_error}")
    return caveats


def _example_unit(config: PipelineConfig) -> str:
    """What a split's examples are: a series' windows (each the lookback and the horizon after it), else rows."""
    return "windows" if config.series_table else "rows"


def _text_columns(config: PipelineConfig) -> List[str]:
    """The table's columns read as free text (words), by their original names."""
    table = config.table
    return [table.name_of(key) for key in table.text_keys] if table else []


def _forecast(config: PipelineConfig, report: RunReport) -> Optional[Dict[str, Any]]:
    """A user's series: how it was read and windowed, and the holdout beside seasonal naive and ETS."""
    spec = config.series_table
    if spec is None:
        return None
    holdout, model = report.holdout, report.model_info.get("forecast", {})
    scores = {} if holdout is None else {name: vars(value) for name, value in holdout.rows if value is not None}
    return {"series": spec.series, "series_id": list(spec.series_id), "time": spec.time,
            "time_format": spec.time_format, "frequency": spec.frequency, "season": spec.season,
            "lookback": spec.lookback, "lookback_reason": spec.lookback_reason, "horizon": spec.horizon,
            "filled": spec.filled, "first_gap": spec.first_gap, "known_ahead": spec.known_ahead, "holdout": scores,
            "ets_series": holdout.ets_series if holdout else 0,
            "base": model.get("base"), "correction_kept": model.get("correction_kept")}


def _forecast_html(forecast: Optional[Mapping[str, Any]]) -> str:
    if not forecast:
        return ""
    facts = _pairs({"series": forecast["series"], "keyed by": ", ".join(forecast["series_id"]) or "-",
                    "time": f"{forecast['time']} ({forecast['time_format']}, {forecast['frequency']}, season "
                            f"{forecast['season']})",
                    "horizon": forecast["horizon"],
                    "lookback": f"{forecast['lookback']} ({forecast['lookback_reason']})",
                    "known ahead": forecast.get("known_ahead") or "-",
                    "base forecast": f"{forecast.get('base') or '-'} (learned correction kept: "
                                     f"{forecast.get('correction_kept')})",
                    "points filled": forecast["filled"]})
    rows = [(_e(name), _number(s["mae"]), _number(s["rmse"]), _number(s["smape"], 2), _number(s["mase"], 3))
            for name, s in forecast["holdout"].items()]
    return ("<h3>Forecasts on the holdout (each series' last horizon points, in its units)</h3>" + facts
            + _table(("forecaster", "MAE", "RMSE", "sMAPE %", "MASE"), rows))


def build_card(config: PipelineConfig, report: RunReport, timing_runs: int = 200) -> Dict[str, Any]:
    """The card's facts, every number from the run's report (ML Metadata, the Trainer's history, TFMA,
    EdgeExport, MLflow)."""
    gates = _gate(config, report)
    slices = _slices(report, gates)
    edge = _edge(report, timing_runs)
    info = report.model_info
    source = (str(config.table.source) if config.table else str(config.images.source) if config.images
              else str(config.series_table.source) if config.series_table else config.use_case or str(config.data_path))
    lineage_ids = {c.node: c.execution_id for c in report.components}
    return {
        "name": config.name,
        "purpose": {"pipeline": config.name, "use_case": config.use_case or None, "task": config.task_name,
                    "labels": list(config.labels_shown),
                    "classes": info.get("class_names", {}), "source": source},
        "data": {"rows": report.split_rows, "unit": _example_unit(config), "span": report.input_properties.get("span"),
                 "training_spans": report.training_spans, "window_spans": config.window_spans,
                 "schema_features": report.schema_features,
                 "curated_schema": str(config.schema_source) if config.schema_source else None,
                 "text_columns": _text_columns(config),
                 "drift": [{"feature": f["feature"], "distance": f["distance"], "threshold": f["threshold"]}
                           for f in report.drift.get("features", [])]},
        "model": {"family": info.get("family", config.family), "parameters": info.get("parameters"),
                  "hparams": info.get("hparams", {}), "epochs_run": info.get("epochs_run"),
                  "best_epoch": info.get("best_epoch"), "candidates": info.get("candidates"),
                  "training_workers": info.get("replicas_in_sync", 1),
                  "history": {k: v for k, v in report.history.items() if k in ("loss", "val_loss")},
                  "pretrained": dict(config.pretrained) or None, "distilled_from": dict(config.distill_from) or None},
        "evaluation": {"gates": gates, "slices": slices, "blessed": report.blessed,
                       "blessing_reason": report.blessing_reason, "baseline": report.baseline},
        "edge": edge,
        "forecast": _forecast(config, report),
        "lineage": {"mlmd_run": report.run_id, "mlmd_executions": lineage_ids,
                    "trainer_model": report.artifact_uris.get("Trainer", {}).get("Model"),
                    "mlflow_run": report.mlflow_run_id, "tracking_uri": config.mlflow_uri,
                    "registered_model": config.name if report.model_version else None,
                    "registry_version": report.model_version, "serving_version": report.pushed_path},
        "caveats": _caveats(config, report, slices, edge),
    }


# --- HTML ------------------------------------------------------------------------------------------

def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else _e(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = f"<thead><tr>{''.join(f'<th>{_e(h)}</th>' for h in header)}</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _pairs(items: Mapping[str, Any]) -> str:
    return _table((), [(f"<b>{_e(k)}</b>", _number(v)) for k, v in items.items()])


def _curve(history: Mapping[str, Sequence[float]], best_epoch: Optional[int]) -> str:
    """The training curve as an inline SVG (loss and val_loss per epoch, the best epoch marked)."""
    series = {k: list(v) for k, v in history.items() if v}
    if not series:
        return "<p>no training history</p>"
    width, height, pad = 560, 220, 36
    epochs = max(len(v) for v in series.values())
    low, high = min(min(v) for v in series.values()), max(max(v) for v in series.values())
    span = (high - low) or 1.0

    def point(i: int, y: float) -> str:
        x = pad + (width - 2 * pad) * (i / max(1, epochs - 1))
        return f"{x:.1f},{height - pad - (height - 2 * pad) * (y - low) / span:.1f}"

    colors = {"loss": "#1f77b4", "val_loss": "#d62728"}
    lines = [f'<polyline class="series" data-name="{_e(k)}" fill="none" stroke="{colors.get(k, "#555")}" '
             f'stroke-width="2" points="{" ".join(point(i, y) for i, y in enumerate(v))}"/>' for k, v in series.items()]
    legend = "".join(f'<text x="{pad + 90 * n}" y="16" fill="{colors.get(k, "#555")}">{_e(k)}</text>'
                     for n, k in enumerate(series))
    marker = ""
    if best_epoch and 1 <= best_epoch <= epochs:
        x = point(best_epoch - 1, low).split(",")[0]
        marker = (f'<line x1="{x}" x2="{x}" y1="{pad}" y2="{height - pad}" stroke="#999" stroke-dasharray="4"/>'
                  f'<text x="{x}" y="{height - 8}" text-anchor="middle">best epoch {best_epoch}</text>')
    axes = (f'<text x="{pad}" y="{height - pad + 14}">1</text><text x="{width - pad}" y="{height - pad + 14}">'
            f'{epochs}</text><text x="2" y="{pad}">{high:.3g}</text><text x="2" y="{height - pad}">{low:.3g}</text>')
    return (f'<svg class="plot" id="training-curve" width="{width}" height="{height}" role="img" '
            f'aria-label="training curve">{legend}{axes}{"".join(lines)}{marker}</svg>')


def _bars(slices: Sequence[Mapping[str, Any]], gates: Sequence[Mapping[str, Any]]) -> str:
    """The gate metric per slice as horizontal bars, with the bound as a line."""
    if not slices:
        return ""
    width, row_height, left = 560, 22, 200
    values = [s["value"] for s in slices] + [g["bound"] for g in gates if g["bound"] is not None]
    top = max(max(values), 1e-9)
    height = row_height * len(slices) + 10
    bars = []
    for n, s in enumerate(slices):
        length = (width - left - 60) * max(s["value"], 0) / top
        color = "#2ca02c" if s["gated"] else "#bbbbbb"
        bars.append(f'<text x="0" y="{n * row_height + 15}">{_e(s["slice"])[:28]}</text>'
                    f'<rect x="{left}" y="{n * row_height + 4}" width="{length:.1f}" height="14" fill="{color}"/>'
                    f'<text x="{left + length + 4:.1f}" y="{n * row_height + 15}">{s["value"]:.3f}</text>')
    for gate in gates:
        if gate["bound"] is not None:
            x = left + (width - left - 60) * gate["bound"] / top
            bars.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}" stroke="#d62728" '
                        f'stroke-dasharray="4"><title>bound {gate["bound"]:g}</title></line>')
    return (f'<svg class="plot" id="slice-metrics" width="{width}" height="{height}" role="img" '
            f'aria-label="gate metric per slice">{"".join(bars)}</svg>')


def _edge_table(variants: Sequence[Mapping[str, Any]]) -> str:
    if not variants:
        return "<p>no TF Lite export</p>"
    return _table(("variant", "shipped", "size KiB", "max |diff| vs SavedModel", "metric", "SavedModel",
                   "batch-1 p50 us"),
                  [(_e(v["variant"]), "yes" if v["shipped"] else f"no: {_e(v['reason'])}",
                    _number((v["size_bytes"] or 0) / 1024, 1), _number(v["max_abs_diff"], 6),
                    f"{_e(v['metric'])} {_number(v['value'])}" if v["metric"] else "-", _number(v["reference"]),
                    _number(v["p50_us"], 0)) for v in variants])


def render_html(card: Mapping[str, Any]) -> str:
    purpose, data, model, evaluation, lineage = (card[k] for k in ("purpose", "data", "model", "evaluation",
                                                                  "lineage"))
    blessed = {True: "blessed", False: "not blessed", None: "not evaluated"}[evaluation["blessed"]]
    body = {
        "purpose": _pairs({"pipeline": purpose["pipeline"], "use case": purpose["use_case"] or "your data",
                           "task": purpose["task"], "labels": ", ".join(purpose["labels"]),
                           "classes": "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in purpose["classes"].items())
                           or "-", "data source": purpose["source"]}),
        "data": _pairs({**{f"{split} {data.get('unit', 'rows')}": rows for split, rows in data["rows"].items()},
                        "span": data["span"],
                        "training spans": ", ".join(map(str, data["training_spans"])) or "-",
                        "schema features": data["schema_features"], "curated schema": data["curated_schema"] or "-",
                        "read as text": ", ".join(data.get("text_columns") or ()) or "-"})
        + (_table(("feature", "drift distance", "threshold"),
                  [(_e(d["feature"]), _number(d["distance"]), _number(d["threshold"])) for d in data["drift"]])
           if data["drift"] else "<p>drift: not checked (no earlier accepted span)</p>"),
        "model": _pairs({"family": model["family"], "candidates": candidates_shown(model.get("candidates")) or "-",
                         "parameters": model["parameters"],
                         "epochs run": model["epochs_run"], "best epoch": model["best_epoch"],
                         "pretrained": json.dumps(model["pretrained"]) if model["pretrained"] else "-",
                         "distilled from": json.dumps(model["distilled_from"]) if model["distilled_from"] else "-"})
        + "<h3>Meta-parameters</h3>" + _pairs(model["hparams"])
        + "<h3>Training curve</h3>" + _curve(model["history"], model["best_epoch"]),
        "evaluation": f'<p class="verdict">{_e(blessed)}: {_e(evaluation["blessing_reason"])}</p>'
        + _table(("target", "gate metric", "bound", "allowed drop vs baseline model"),
                 [(_e(g["label"]), _e(g["name"]), _number(g["bound"]), _number(g["max_drop"]))
                  for g in evaluation["gates"]])
        + _table(("slice", "metric", "value", "change vs baseline model", f"eval {data.get('unit', 'rows')}", "gated"),
                 [(_e(s["slice"]), _e(s["metric"]), _number(s["value"]), _number(s["change_vs_baseline"]),
                   _number(s["rows"], 0), "yes" if s["gated"] else "no") for s in evaluation["slices"]])
        + _bars(evaluation["slices"], evaluation["gates"])
        + (f"<p>scikit-learn baseline on the same split: {_e(evaluation['baseline'].get('model'))} "
           f"{_e(evaluation['baseline'].get('metric'))} {_number(evaluation['baseline'].get('value'))}</p>"
           if evaluation["baseline"].get("value") is not None else "")
        + _forecast_html(card.get("forecast")),
        "edge": _edge_table(card["edge"]),
        "lineage": _pairs({"ML Metadata run": lineage["mlmd_run"], "Trainer model": lineage["trainer_model"],
                           **({"MLflow run": lineage["mlflow_run"], "tracking URI": lineage["tracking_uri"],
                               "registered model": lineage["registered_model"],
                               "registry version": lineage["registry_version"]} if lineage["mlflow_run"] else
                              {"MLflow": "not tracked (--no-tracking)"}),
                           "serving version": lineage["serving_version"]})
        + _table(("component", "ML Metadata execution"),
                 [(_e(k), _number(v)) for k, v in lineage["mlmd_executions"].items()]),
        "caveats": "<ul>" + "".join(f"<li>{_e(c)}</li>" for c in card["caveats"]) + "</ul>" if card["caveats"]
        else "<p>none found</p>",
    }
    sections = "".join(f'<section id="{key}"><h2>{TITLES[key]}</h2>{body[key]}</section>' for key in SECTIONS)
    style = ("body{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "text-align:left;font-size:14px}section{margin-bottom:1.5em}.verdict{font-weight:bold}"
             "svg text{font-size:11px}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Model card: {_e(card["name"])}'
            f'</title><style>{style}</style></head><body><h1>Model card: {_e(card["name"])}</h1>{sections}'
            "</body></html>")


def write_card(config: PipelineConfig, report: RunReport, timing_runs: int = 200) -> Optional[Path]:
    """The card of a newly pushed blessed model, into its ``assets.extra/``; the HTML's path."""
    if not (report.blessed and report.pushed_now and report.pushed_path):
        return None
    card = build_card(config, report, timing_runs)
    folder = Path(report.pushed_path) / ASSETS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CARD_JSON).write_text(json.dumps(card, indent=1, default=str))
    (folder / CARD_HTML).write_text(render_html(card))
    return folder / CARD_HTML


def card_path(version_dir: Path) -> Path:
    return Path(version_dir) / ASSETS_DIR / CARD_HTML


def card_summary(card: Mapping[str, Any]) -> List[str]:
    """The card in a few lines for the terminal (`mlops card`)."""
    purpose, evaluation, lineage = card["purpose"], card["evaluation"], card["lineage"]
    unit = card["data"].get("unit", "rows")  # a card written before units were recorded: rows
    texts, candidates = card["data"].get("text_columns"), candidates_shown(card["model"].get("candidates"))
    bounds = [f"{g['name']} {'>=' if g['higher_is_better'] else '<='} {g['bound']:g}"
              for g in evaluation.get("gates", []) if g.get("bound") is not None]
    lines = [f"model card: {card['name']} ({purpose['task']}; labels {', '.join(purpose['labels'])}; "
             f"data {purpose['source']})",
             f"data: {', '.join(f'{k} {v:,} {unit}' for k, v in card['data']['rows'].items())}; "
             f"{card['data']['schema_features']} schema features" + (f"; read as text: {', '.join(texts)}" if texts
                                                                     else ""),
             f"model: {card['model']['family']}, {card['model']['parameters']:,} parameters, "
             f"{card['model']['epochs_run']} epochs (best {card['model']['best_epoch']})"
             + (f"; candidates {candidates}" if candidates else ""),
             f"evaluation: {'blessed' if evaluation['blessed'] else 'not blessed'} ({evaluation['blessing_reason']})"
             + (f"; gate: {', '.join(bounds)}" if bounds else "")]
    lines += [f"  {s['slice']:<28} {s['metric']} {s['value']:.4f}" for s in evaluation["slices"][:8]]
    forecast = card.get("forecast") or {}
    lines += [f"holdout ({forecast['horizon']} steps of {forecast['series']} series): {name} MAE {s['mae']:.4g} "
              f"MASE {s['mase']:.3f}" for name, s in forecast.get("holdout", {}).items()]
    lines += [f"edge: {v['variant']} " + (f"{v['size_bytes'] / 1024:.1f} KiB " if v["size_bytes"] else "")
              + ("shipped" if v["shipped"] else "left out") for v in card["edge"]]
    tracked = (f"MLflow run {lineage['mlflow_run']}, registry version {lineage['registry_version']}"
               if lineage["mlflow_run"] else "not tracked in MLflow (--no-tracking)")
    lines.append(f"lineage: {tracked}, serving {lineage['serving_version']}")
    lines += [f"caveat: {c}" for c in card["caveats"]]
    return lines
