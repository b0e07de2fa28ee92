"""`mlops`: the command line. Input is checked before TensorFlow or TFX is imported, so a bad
argument or file fails in about a second with one line naming the problem (exit code 2)."""
import argparse
import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class CliError(Exception):
    """A one-line user error."""


def _quiet_runtime() -> None:
    """Before TensorFlow loads: Keras 2 (tf_keras) everywhere, and no C++/absl chatter."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _quiet_pipeline_runtime() -> None:
    """_quiet_runtime, and absl (TFX, Beam, TFDV) at errors only: for commands that run pipelines."""
    _quiet_runtime()
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)


def _parse_hparams(pairs: List[str]) -> Dict[str, str]:
    hparams = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--hparam {pair!r}: expected KEY=VALUE")
        hparams[key.strip()] = value.strip()
    return hparams


def _targets(label_arg: str, task_name: str) -> Tuple[Tuple[str, str], ...]:
    """--label COLUMN; multilabel: --label COLUMN,COLUMN (each 0/1); multitask: COLUMN:TASK,COLUMN:TASK."""
    from components.tasks import SINGLE_TARGET_TASKS

    if task_name == "multilabel":
        return tuple((name, "binary") for name in label_arg.split(","))
    if task_name != "multitask":
        return ((label_arg, task_name),)
    targets = []
    for item in label_arg.split(","):
        name, sep, subtask = item.partition(":")
        if not sep or subtask not in SINGLE_TARGET_TASKS:
            raise CliError(f"--label {label_arg!r}: multitask needs COLUMN:TASK pairs, TASK one of "
                           f"{', '.join(SINGLE_TARGET_TASKS)}")
        targets.append((name, subtask))
    return tuple(targets)


def build_config(args: argparse.Namespace):
    """Validates arguments and data (no TensorFlow import for CSVs) and returns the PipelineConfig."""
    from components.models.registry import UnsupportedModelError, default_family, get_family, resolve_hparams
    from components.tasks import UnknownTaskError, get_task
    from pipelines.config import PipelineConfig, beam_args, default_gate_threshold
    from pipelines.datasets import DEFAULT_USE_CASE, USE_CASES, UseCase, materialize, naive_forecast_mae
    from pipelines.home import Home
    from pipelines.preflight import InputDataError, profile_csv
    from pipelines.schema import curated_schema, feature_kinds, pinned_copy
    from pipelines.spans import DEFAULT_WINDOW, detect

    home = Home.resolve(args.home)
    try:
        if args.data:
            if args.usecase:
                raise CliError("give either a use case or --data, not both")
            missing = [flag for flag, value in (("--label", args.label), ("--task", args.task)) if not value]
            if missing:
                raise CliError(f"--data needs {' and '.join(missing)}")
            task = get_task(args.task)
            data_path = Path(args.data).expanduser().resolve()
            usecase = UseCase(args.name or data_path.stem, task.name, _targets(args.label, task.name), "", list,
                              family=default_family(task.name))
        else:
            usecase_name = args.usecase or DEFAULT_USE_CASE
            if usecase_name not in USE_CASES:
                raise CliError(f"unknown use case '{usecase_name}'; use cases: {', '.join(sorted(USE_CASES))}")
            usecase, data_path = USE_CASES[usecase_name], None
            task = get_task(usecase.task)
        name = args.name or usecase.name
        family = args.family or usecase.family
        get_family(family, task.name)
        hparams = {**(usecase.hparams if family == usecase.family else {}), **_parse_hparams(args.hparam)}
        resolve_hparams(family, hparams)
        if args.threshold is not None and len(usecase.targets) > 1:
            raise CliError("--threshold sets a single-target gate; multilabel and multitask gates come from the data")
        beam = beam_args(args.beam_mode, args.beam_workers, tuple(args.beam_arg))
        schema_path = curated_schema(name, Path(args.schemas_dir) if args.schemas_dir else None)
        schema_kinds = feature_kinds(schema_path) if schema_path else None  # a broken one is refused, named
        if schema_path:
            schema_path = pinned_copy(schema_path, home.curated_schemas(name))
        if data_path is None:
            data_path = materialize(usecase, home.data_dir(name))
        layout = detect(data_path) if args.data else None  # a folder of span-N/ or YYYYMMDD/ folders
        if layout is None and (args.span or args.window):
            raise CliError("--span and --window need --data DIR with span folders (span-N/*.csv or YYYYMMDD/*.csv)")
        span = layout.parse(args.span) if layout and args.span else None
        window = DEFAULT_WINDOW if args.window is None else args.window
        if window < 1:
            raise CliError(f"--window {window}: need at least 1 span")
        targets = [(label, get_task(subtask)) for label, subtask in usecase.targets]
        if usecase.input_format == "csv":
            profile_path = layout.csv_of(layout.newest if span is None else span) if layout else data_path
            profile = profile_csv(profile_path, targets, schema_kinds)
            gates = {label: default_gate_threshold(subtask, profile.targets[label]) for label, subtask in targets}
            strings = profile.strings
        elif usecase.input_format == "series":  # beat repeating the last value
            gates = {usecase.targets[0][0]: round(naive_forecast_mae(usecase.make(), **usecase.series), 6)}
            strings = ()
        else:  # project-written TFRecords: the use case states its gates (applied just below)
            gates, strings = {}, ()
        gates.update(usecase.gate_thresholds or {})
        if args.threshold is not None:
            gates = {usecase.targets[0][0]: args.threshold}
    except (UnknownTaskError, UnsupportedModelError, InputDataError, ValueError) as e:
        raise CliError(str(e)) from None
    return PipelineConfig(
        name=name, data_path=data_path, task_name=task.name, targets=usecase.targets, home=home, family=family,
        hparams=hparams, schema_path=schema_path, gate_thresholds=gates, max_metric_drop=args.max_drop,
        enable_cache=not args.no_cache, string_features=strings, input_format=usecase.input_format,
        tensors=usecase.tensors, series=usecase.series, tuner=args.tune, max_trials=args.max_trials,
        warm_start=args.warm_start, edge=not args.no_edge, tracking_uri=home.tracking_uri(args.tracking_uri),
        beam_args=beam, span_pattern=layout.pattern if layout else "", span=span,
        window_spans=window if layout else 1,
    )


def cmd_run(args: argparse.Namespace) -> int:
    config = build_config(args)
    _quiet_pipeline_runtime()
    from pipelines.local_runner import format_summary, run_pipeline

    report = run_pipeline(config, track=not args.no_tracking)
    print(format_summary(config, report), flush=True)
    return EXIT_OK if report.succeeded else EXIT_FAILED


def cmd_skew(args: argparse.Namespace) -> int:
    """Serving skew of a version's logged requests vs its training split; exit 1 when skewed."""
    from pipelines.home import Home

    home = Home.resolve(args.home)
    _quiet_pipeline_runtime()
    from pipelines.skew import SkewError, format_skew, skew_for_version

    try:
        version, rows, skews = skew_for_version(
            home, args.name, args.version, Path(args.request_log_dir) if args.request_log_dir else None,
            categorical_threshold=args.categorical_threshold, numeric_threshold=args.numeric_threshold)
    except SkewError as e:
        raise CliError(str(e)) from None
    print(format_skew(args.name, version, rows, skews))
    return EXIT_FAILED if any(s.flagged for s in skews) else EXIT_OK


def cmd_schedule(args: argparse.Namespace) -> int:
    """A cron entry for scheduled runs of `mlops run RUN_ARGS` (checked by the run parser first)."""
    from pipelines.datasets import DEFAULT_USE_CASE
    from pipelines.home import Home
    from pipelines.schedule import ScheduleError, entry, install

    run_args = [a for a in args.run_args if a != "--"]
    if "--home" in run_args:
        raise CliError("give --home to `mlops schedule`, not after --")
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            run = parser().parse_args(["run", *run_args])
    except SystemExit:
        raise CliError(f"`mlops run {' '.join(run_args)}` would not parse (see mlops run --help)") from None
    name = run.name or run.usecase or (Path(run.data).stem if run.data else DEFAULT_USE_CASE)
    if run.data:  # the scheduler's working dir may differ: make the data path absolute
        absolute = str(Path(run.data).resolve())
        run_args = [absolute if a == run.data else a.replace(f"--data={run.data}", f"--data={absolute}")
                    for a in run_args]
    try:
        line = entry(name, args.cron, run_args, Home.resolve(args.home).root, Path.cwd(), args.promote)
        if args.install:
            install(line, name)
    except ScheduleError as e:
        raise CliError(str(e)) from None
    print(line if not args.install else f"installed in your crontab:\n{line}")
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    """Batch scoring on Beam with a registered model (default: the champion)."""
    from pipelines.home import Home

    home = Home.resolve(args.home)
    _quiet_pipeline_runtime()
    from pipelines.config import beam_args
    from pipelines.scoring import ScoringError, resolve_model, score

    def act():
        model = resolve_model(home, args.name, home.tracking_uri(args.tracking_uri), args.alias, args.version,
                              args.model_dir)
        return model, score(model, args.data, Path(args.output),
                            beam_args(args.beam_mode, args.beam_workers, tuple(args.beam_arg)))

    try:
        result = _registry_call(act)
    except (ScoringError, ValueError) as e:
        raise CliError(str(e)) from None
    if result is None:
        return EXIT_FAILED
    model, written = result
    print(f"scored {written['rows']} rows with '{model.name}' version {model.version or '-'} "
          f"(serving version {model.serving_version}): {', '.join(written['csv'] + written['tfrecord'])}")
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from pipelines.synthetic import LABEL, write_spans, write_transactions

    try:
        if args.spans:
            write_spans(Path(args.output), args.spans, args.rows, args.seed)
            path, what = Path(args.output).resolve(), f"{args.spans} spans (span-N/data.csv) of {args.rows} rows"
        else:
            path, what = write_transactions(Path(args.output), args.rows, args.seed), f"{args.rows} rows"
    except (ValueError, OSError) as e:
        raise CliError(f"{args.output}: {e}") from None
    print(f"{path}: {what}; run it with: mlops run --data {path} --label {LABEL} --task binary")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    """The curated schema of a pipeline, from its last run's, with drift comparators."""
    from pipelines.home import Home
    from pipelines.schema import REPO_SCHEMAS, SCHEMA_FILE, SchemaExistsError, latest_pipeline_schema, \
        write_curated_schema

    home = Home.resolve(args.home)
    target = Path(args.schemas_dir or REPO_SCHEMAS) / args.name / SCHEMA_FILE
    try:
        source = latest_pipeline_schema(home.metadata_path, args.name)
        write_curated_schema(source, target, args.categorical_drift, args.numeric_drift, args.force)
    except (FileNotFoundError, SchemaExistsError, ValueError) as e:
        raise CliError(str(e)) from None
    print(f"{target}: curated schema of '{args.name}' (from {source}) with drift comparators: L-infinity "
          f"{args.categorical_drift:g} on categorical, Jensen-Shannon {args.numeric_drift:g} on numeric features; "
          f"later runs import it and a new span drifting past them is refused")
    return EXIT_OK


def cmd_compile(args: argparse.Namespace) -> int:
    """The pipeline spec for Kubeflow Pipelines v2 / Vertex (the data is profiled locally)."""
    if not args.pipeline_root.startswith(("gs://", "s3://", "/")) or not args.data_uri.strip("/"):
        raise CliError(f"--pipeline-root {args.pipeline_root!r}: give a URI such as gs://bucket/mlops")
    config = build_config(args)
    if config.span_pattern:
        raise CliError("span folders run their drift gate and training window through this project's own ML Metadata "
                       "resolvers, which Kubeflow v2 cannot compile; compile a single input file")
    _quiet_pipeline_runtime()
    from pipelines.kubeflow_runner import compile_kubeflow

    path = compile_kubeflow(config, Path(args.output), args.pipeline_root, args.data_uri, args.image)
    print(f"{path}: Kubeflow v2 pipeline spec for '{config.name}' (image {args.image}, root {args.pipeline_root})")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """TF Serving's REST and gRPC APIs over <home>/serving (no TFX import on this path)."""
    from pipelines.home import Home

    home = Home.resolve(args.home)
    serving_dir = Path(args.serving_dir).expanduser().resolve() if args.serving_dir else home.serving_dir
    if not serving_dir.is_dir():
        raise CliError(f"{serving_dir}: no serving directory (run a pipeline first, or give --serving-dir)")
    if not 0.0 <= args.log_requests <= 1.0:
        raise CliError(f"--log-requests {args.log_requests}: a sampling rate between 0 and 1")
    _quiet_runtime()
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from serving.core import ServerOptions
    from serving.model_config import ModelConfigError
    from serving.server import serve_forever

    options = ServerOptions(
        poll_seconds=args.poll_seconds, enable_batching=args.enable_batching, max_batch_size=args.max_batch_size,
        batch_timeout_ms=args.batch_timeout_ms, max_request_rows=args.max_request_rows,
        max_request_bytes=args.max_request_bytes, request_timeout_s=args.request_timeout,
        request_log_dir=Path(args.request_log_dir) if args.request_log_dir else home.request_logs,
        request_log_rate=args.log_requests)
    try:
        serve_forever(serving_dir, args.host, args.rest_port, args.grpc_port, options)
    except ModelConfigError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"cannot start the server on {args.host}: {e}") from None
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from serving.client import (ClientError, Target, predict_grpc, predict_rest, print_predictions,
                                request_from_file, signature_inputs)

    target = Target(args.host, args.model, args.version, args.label, args.signature or "")
    path = Path(args.file)
    try:
        fetched = {}

        def inputs_of():
            if "inputs" not in fetched:
                fetched["inputs"] = signature_inputs(args.host, args.rest_port, target)
            return fetched["inputs"]

        body, dropped = request_from_file(path, inputs_of)
        if dropped:
            print(f"mlops: note: columns the model does not take were left out: {', '.join(dropped)}",
                  file=sys.stderr)
        if args.grpc:
            _quiet_runtime()
            response = predict_grpc(args.host, args.grpc_port, target, body, inputs_of())
        else:
            response = predict_rest(args.host, args.rest_port, target, body)
    except ClientError as e:
        print(f"mlops: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    print_predictions(response)
    return EXIT_OK


def cmd_edge_predict(args: argparse.Namespace) -> int:
    """Runs a .tflite model on raw rows with the LiteRT interpreter (no TFX, no TensorFlow)."""
    import json

    from serving.edge import EdgeInputError, EdgeModel, read_rows, read_sidecar, rows_to_inputs

    model_path = Path(args.model)
    if not model_path.exists():
        raise CliError(f"{model_path}: no such file")
    try:
        sidecar = read_sidecar(model_path)
        inputs = rows_to_inputs(sidecar, read_rows(Path(args.file), sidecar), str(args.file))
    except EdgeInputError as e:
        raise CliError(str(e)) from None
    outputs = EdgeModel(model_path).predict(inputs)
    for i in range(len(next(iter(outputs.values())))):
        row = {name: value[i].tolist() for name, value in outputs.items()}
        print(f"{i}\t{json.dumps(row if len(row) > 1 else next(iter(row.values())))}")
    return EXIT_OK


def cmd_edge_bench(args: argparse.Namespace) -> int:
    from serving.edge import EdgeInputError, bench

    model_path = Path(args.model)
    if not model_path.exists():
        raise CliError(f"{model_path}: no such file")
    try:
        result = bench(model_path, runs=args.runs)
    except EdgeInputError as e:
        raise CliError(str(e)) from None
    print(f"{model_path}: {result['size_bytes'] / 1024:.1f} KiB, batch 1 over {result['runs']} runs: "
          f"p50 {result['p50_us']} us, p99 {result['p99_us']} us")
    return EXIT_OK


def _pipeline_args(command: argparse.ArgumentParser) -> None:
    """What defines a pipeline: shared by `run` and `compile`."""
    from components.models.registry import TUNERS
    from pipelines.config import BEAM_MODES, DEFAULT_MAX_METRIC_DROP
    from pipelines.spans import DEFAULT_WINDOW

    command.add_argument("usecase", nargs="?", help="a built-in use case (default: fraud)")
    command.add_argument("--data", help="your CSV file, or a folder of spans span-N/*.csv or YYYYMMDD/*.csv "
                                        "(needs --label and --task)")
    command.add_argument("--span", help="with span folders: run this span (N, or YYYYMMDD) instead of the newest")
    command.add_argument("--window", type=int, help=f"with span folders: train on the newest N accepted spans "
                                                     f"(default {DEFAULT_WINDOW})")
    command.add_argument("--label", help="the label column of --data (multilabel: A,B,C; multitask: A:TASK,B:TASK)")
    command.add_argument("--task", help="binary, multiclass, regression, anomaly, multilabel or multitask")
    command.add_argument("--name", help="pipeline name (default: the use case or the CSV's file name)")
    command.add_argument("--home", help="home dir of all stores (default: $MLOPS_HOME or ./.mlops)")
    command.add_argument("--family", help="model family (default: the use case's, else dnn)")
    command.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE", help="hyperparameter override")
    command.add_argument("--threshold", type=float, help="bound on the task's gate metric (default: from the data)")
    command.add_argument("--max-drop", type=float, default=DEFAULT_MAX_METRIC_DROP,
                         help="allowed worsening of the gate metric vs the baseline model")
    command.add_argument("--schemas-dir", help="curated schemas (default: the repo's schemas/)")
    command.add_argument("--tune", choices=TUNERS, help="tune the family's search space first (KerasTuner oracle)")
    command.add_argument("--max-trials", type=int, default=6, help="tuning trials (random, bayesian)")
    command.add_argument("--warm-start", action="store_true",
                         help="start from the last blessed model of the same family and inputs")
    command.add_argument("--no-edge", action="store_true", help="skip the TF Lite export (EdgeExport)")
    command.add_argument("--no-cache", action="store_true", help="rerun every component")
    command.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    command.add_argument("--tracking-uri", help=TRACKING_HELP)
    command.add_argument("--beam-mode", choices=BEAM_MODES, default="in_memory",
                         help="DirectRunner mode (default in_memory: fastest on small data)")
    command.add_argument("--beam-workers", type=int, default=1, help="DirectRunner workers (multi_processing: processes)")
    command.add_argument("--beam-arg", action="append", default=[], metavar="ARG",
                         help="passed to Beam as is, e.g. --beam-arg=--runner=DataflowRunner --beam-arg=--project=P")


TRACKING_HELP = "MLflow tracking/registry URI (default: $MLFLOW_TRACKING_URI, else <home>/mlflow.db)"


def _registry_args(command: argparse.ArgumentParser) -> None:
    command.add_argument("--home", help="home dir (default: $MLOPS_HOME or ./.mlops): its serving labels follow")
    command.add_argument("--tracking-uri", help=TRACKING_HELP)
    command.add_argument("--by", help="who acts (default: $GITHUB_ACTOR or the user)")


def _min_metrics(pairs: List[str]) -> Dict[str, float]:
    from pipelines.promotion import ANY_TARGET

    bounds = {}
    for pair in pairs:
        label, sep, value = pair.rpartition("=")
        try:
            bounds[label if sep else ANY_TARGET] = float(value)
        except ValueError:
            raise CliError(f"--min-metric {pair!r}: expected [LABEL=]NUMBER") from None
    return bounds


def _registry_call(action):
    """Runs a registry action; a busy lock, an unreachable server or a missing model is one line."""
    from pipelines.model_eval import EvaluationError
    from pipelines.promotion import PromotionError
    from pipelines.registry import RegistryError
    from serving.model_config import ModelConfigError

    try:
        return action()
    except (PromotionError, RegistryError, EvaluationError, ModelConfigError) as e:
        print(f"mlops: error: {e}", file=sys.stderr)
        return None


def cmd_promote(args: argparse.Namespace) -> int:
    from pipelines.home import Home

    home = Home.resolve(args.home)
    bounds = _min_metrics(args.min_metric)
    _quiet_runtime()
    from pipelines.promotion import PromotionRules, format_table, promote

    def act():
        rules = PromotionRules(bounds, args.min_improvement, args.max_slice_drop, args.min_slice_rows)
        return promote(home, args.name, home.tracking_uri(args.tracking_uri), rules, canary=args.canary,
                       examples=args.examples, by=args.by)

    outcome = _registry_call(act)
    if outcome is None:
        return EXIT_FAILED
    print(format_table(outcome), flush=True)
    if args.summary_md:
        with open(args.summary_md, "a") as f:
            f.write(format_table(outcome, markdown=True) + "\n")
    return EXIT_OK if outcome.passed else EXIT_FAILED


def cmd_rollback(args: argparse.Namespace) -> int:
    from pipelines.home import Home
    from pipelines.promotion import rollback

    home = Home.resolve(args.home)
    event = _registry_call(lambda: rollback(home, args.name, home.tracking_uri(args.tracking_uri), args.to, args.by))
    if event is None:
        return EXIT_FAILED
    print(f"rolled back '{args.name}': champion v{event['from']['version']} -> v{event['to']['version']} "
          f"(serving version {event['to']['serving_version']} is now 'stable')")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from pipelines.home import Home
    from pipelines.promotion import format_history
    from pipelines.registry import client_for, history

    home = Home.resolve(args.home)
    events = _registry_call(lambda: history(client_for(home.tracking_uri(args.tracking_uri)), args.name))
    if events is None:
        return EXIT_FAILED
    print(format_history(events) if events else f"no promotions of '{args.name}' yet")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    from pipelines.config import BEAM_MODES
    from pipelines.kubeflow_runner import DEFAULT_IMAGE
    from components.comparators import DEFAULT_CATEGORICAL_THRESHOLD, DEFAULT_NUMERIC_THRESHOLD
    from pipelines.promotion import DEFAULT_MAX_SLICE_DROP, DEFAULT_MIN_SLICE_ROWS

    top = argparse.ArgumentParser(prog="mlops", description="TFX pipelines from data to a served model.")
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a pipeline end to end (default: the 'fraud' use case)")
    _pipeline_args(run)
    run.set_defaults(handler=cmd_run)

    skew = sub.add_parser("skew", help="logged serving requests vs the training data, per feature (exit 1: skewed)")
    skew.add_argument("name")
    skew.add_argument("--version", type=int, help="serving version (default: the newest with request logs)")
    skew.add_argument("--home", help="home dir (default: $MLOPS_HOME or ./.mlops)")
    skew.add_argument("--request-log-dir", help="default: <home>/request-logs")
    skew.add_argument("--categorical-threshold", type=float, default=DEFAULT_CATEGORICAL_THRESHOLD,
                      help="L-infinity distance of value frequencies")
    skew.add_argument("--numeric-threshold", type=float, default=DEFAULT_NUMERIC_THRESHOLD,
                      help="approximate Jensen-Shannon divergence")
    skew.set_defaults(handler=cmd_skew)

    compile_ = sub.add_parser("compile", help="compile the pipeline for an orchestrator (Kubeflow v2 / Vertex)")
    _pipeline_args(compile_)
    compile_.add_argument("--kubeflow", action="store_true", required=True,
                          help="KFP v2 / Vertex AI pipeline spec (TFX's KubeflowV2DagRunner)")
    compile_.add_argument("--output", required=True, help="FILE.json to write")
    compile_.add_argument("--pipeline-root", required=True, help="root URI of every artifact, e.g. gs://bucket/mlops")
    compile_.add_argument("--data-uri", required=True, help="where the input file is uploaded, e.g. gs://bucket/x.csv")
    compile_.add_argument("--image", default=DEFAULT_IMAGE, help="container image holding this project")
    compile_.set_defaults(handler=cmd_compile)

    schedule = sub.add_parser("schedule", help="print (or --install) a cron entry for scheduled runs")
    schedule.add_argument("--cron", default="17 3 * * *", help="cron schedule (default: daily at 03:17)")
    schedule.add_argument("--promote", action="store_true", help="run `mlops promote` after each successful run")
    schedule.add_argument("--install", action="store_true", help="put it in your crontab (replacing this pipeline's)")
    schedule.add_argument("--home", help="home dir of the scheduled runs (default: $MLOPS_HOME or ./.mlops)")
    schedule.add_argument("run_args", nargs=argparse.REMAINDER, help="-- then the arguments of `mlops run`")
    schedule.set_defaults(handler=cmd_schedule)

    scoring = sub.add_parser("score", help="batch scoring on Beam with a registered model (default: champion)")
    scoring.add_argument("name", help="registered model (= pipeline name)")
    scoring.add_argument("--data", required=True, help="FILE.csv, or TFRecord files of tf.Examples (file, dir, glob)")
    scoring.add_argument("--output", required=True, help="directory for predictions-*.csv and *.tfrecord.gz")
    pick = scoring.add_mutually_exclusive_group()
    pick.add_argument("--alias", default="champion", help="registry alias (default: champion)")
    pick.add_argument("--version", type=int, help="registry version")
    pick.add_argument("--model-dir", help="score with this SavedModel directory instead of the registry")
    scoring.add_argument("--home", help="home dir (default: $MLOPS_HOME or ./.mlops)")
    scoring.add_argument("--tracking-uri", help=TRACKING_HELP)
    scoring.add_argument("--beam-mode", choices=BEAM_MODES, default="in_memory")
    scoring.add_argument("--beam-workers", type=int, default=1)
    scoring.add_argument("--beam-arg", action="append", default=[], metavar="ARG")
    scoring.set_defaults(handler=cmd_score)

    generate = sub.add_parser("generate", help="write a synthetic tabular CSV of any size (scale runs)")
    generate.add_argument("output", help="FILE.csv to write (with --spans: the folder of span-N/data.csv)")
    generate.add_argument("--rows", type=int, default=1_000_000, help="rows (per span)")
    generate.add_argument("--spans", type=int, help="write this many span folders instead of one file")
    generate.add_argument("--seed", type=int, default=0)
    generate.set_defaults(handler=cmd_generate)

    schema = sub.add_parser("schema", help="write the curated schema <schemas>/NAME/schema.pbtxt from the last "
                                           "run's, with drift comparators (the drift gate between spans)")
    schema.add_argument("name", help="pipeline name")
    schema.add_argument("--home", help="home dir (default: $MLOPS_HOME or ./.mlops)")
    schema.add_argument("--schemas-dir", help="curated schemas (default: the repo's schemas/)")
    schema.add_argument("--categorical-drift", type=float, default=DEFAULT_CATEGORICAL_THRESHOLD,
                        help="L-infinity threshold between consecutive spans (categorical features)")
    schema.add_argument("--numeric-drift", type=float, default=DEFAULT_NUMERIC_THRESHOLD,
                        help="Jensen-Shannon divergence threshold between consecutive spans (numeric features)")
    schema.add_argument("--force", action="store_true", help="replace an existing curated schema")
    schema.set_defaults(handler=cmd_schema)

    promote = sub.add_parser("promote", help="the CI gate: challenger vs champion on the same rows; on pass, "
                             "champion alias and serving label 'stable' move (exit 1 when refused)")
    promote.add_argument("name", help="registered model (= pipeline name)")
    promote.add_argument("--min-metric", action="append", default=[], metavar="[LABEL=]VALUE",
                         help="absolute bound on the gate metric (default: the pipeline's own gate)")
    promote.add_argument("--min-improvement", type=float, default=0.0,
                         help="required gain over the champion in the metric's better direction (default 0)")
    promote.add_argument("--max-slice-drop", type=float, default=DEFAULT_MAX_SLICE_DROP,
                         help="largest allowed worsening on any slice")
    promote.add_argument("--min-slice-rows", type=int, default=DEFAULT_MIN_SLICE_ROWS,
                         help="slices with fewer eval rows are shown but not gated")
    promote.add_argument("--canary", action="store_true",
                         help="on pass, serve it under the label 'canary' (alias canary); champion unchanged")
    promote.add_argument("--examples", help="evaluate on these TFRecords instead of the challenger's eval split")
    promote.add_argument("--summary-md", help="also write the table as markdown (e.g. $GITHUB_STEP_SUMMARY)")
    _registry_args(promote)
    promote.set_defaults(handler=cmd_promote)

    rollback = sub.add_parser("rollback", help="back to the previous champion (or --to VERSION); labels follow")
    rollback.add_argument("name")
    rollback.add_argument("--to", type=int, metavar="VERSION", help="registry version to make champion")
    _registry_args(rollback)
    rollback.set_defaults(handler=cmd_rollback)

    history = sub.add_parser("history", help="promotions and rollbacks of a registered model")
    history.add_argument("name")
    _registry_args(history)
    history.set_defaults(handler=cmd_history)

    serve = sub.add_parser("serve", help="serve the pushed models over TF Serving's REST and gRPC APIs")
    serve.add_argument("--home", help="home dir (default: $MLOPS_HOME or ./.mlops); serves <home>/serving")
    serve.add_argument("--serving-dir", help="serve this base dir instead of <home>/serving")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--rest-port", type=int, default=8501)
    serve.add_argument("--grpc-port", type=int, default=8500)
    serve.add_argument("--poll-seconds", type=float, default=1.0, help="how often models.config and dirs are read")
    serve.add_argument("--enable-batching", action="store_true", help="batch concurrent requests server-side")
    serve.add_argument("--max-batch-size", type=int, default=32, help="rows per batched model call")
    serve.add_argument("--batch-timeout-ms", type=float, default=2.0, help="how long a batch waits to fill")
    serve.add_argument("--max-request-rows", type=int, default=1024, help="rows allowed in one request")
    serve.add_argument("--max-request-bytes", type=int, default=16 * 1024 * 1024, help="request body limit")
    serve.add_argument("--request-timeout", type=float, default=30.0, help="seconds a model call may take")
    serve.add_argument("--log-requests", type=float, default=0.0, metavar="RATE",
                       help="log this fraction of requests as tf.Examples (0: off)")
    serve.add_argument("--request-log-dir", help="default: <home>/request-logs")
    serve.set_defaults(handler=cmd_serve)

    predict = sub.add_parser("predict", help="send rows from a JSON or CSV file to a running server")
    predict.add_argument("file", help="FILE.json (TF Serving request or list of rows) or FILE.csv")
    predict.add_argument("--model", required=True)
    which = predict.add_mutually_exclusive_group()
    which.add_argument("--version", type=int)
    which.add_argument("--label", help="a version label from models.config, e.g. stable or canary")
    api = predict.add_mutually_exclusive_group()
    api.add_argument("--rest", action="store_true", help="use the REST API (default)")
    api.add_argument("--grpc", action="store_true", help="use the gRPC API")
    predict.add_argument("--signature", help="signature name (default: serving_default)")
    predict.add_argument("--host", default="127.0.0.1")
    predict.add_argument("--rest-port", type=int, default=8501)
    predict.add_argument("--grpc-port", type=int, default=8500)
    predict.set_defaults(handler=cmd_predict)

    edge = sub.add_parser("edge", help="run or time a TF Lite model as an edge device would (LiteRT)")
    edge_sub = edge.add_subparsers(dest="edge_command", required=True)
    edge_predict = edge_sub.add_parser("predict", help="predict raw rows from a CSV or .npy file")
    edge_predict.add_argument("model", help="a .tflite file with edge.json beside it (<version>/tflite/)")
    edge_predict.add_argument("file", help="FILE.csv (raw columns by name) or FILE.npy")
    edge_predict.set_defaults(handler=cmd_edge_predict)
    edge_bench = edge_sub.add_parser("bench", help="batch-1 latency and size")
    edge_bench.add_argument("model")
    edge_bench.add_argument("--runs", type=int, default=2000)
    edge_bench.set_defaults(handler=cmd_edge_bench)
    return top


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except CliError as e:
        print(f"mlops: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
