"""Pipeline commands: run, compile (Kubeflow), generate (synthetic data), schema (curated schema).
Input is checked before TensorFlow or TFX is imported, so a bad argument or file fails in about a
second with one line naming the problem."""
import argparse
import dataclasses
from pathlib import Path
from typing import Any

from cli.exit_codes import EXIT_OK, EXIT_REFUSED, UserError, translated
from cli.shared_options import COMMON, HOME, TRACKING, add_command, beam_options, home_of, quiet_pipeline_runtime
from core.beam_runners import ServiceUnreachable, check_services
from pipelines.configure import (
    BeamOptions,
    ConfigError,
    ForecastOptions,
    ImageOptions,
    ReadingOptions,
    RunRequest,
    TransferOptions,
    TuningOptions,
    build_config,
    parse_hparams,
    prepare_inputs,
)


def _names(text: str) -> tuple:
    """COL,COL: column names as given (original names or feature keys)."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _names_or_none(text: str) -> tuple:
    """COL,... or ``none`` (an empty choice, not the default)."""
    return () if text.strip().lower() == "none" else _names(text)


def _reading_options(group: Any) -> None:
    """How to read --data and which columns are what: ReadingOptions."""
    from components.specs import DEFAULT_TEXT_NGRAMS, TEXT_NGRAMS
    from pipelines.inputs.preflight import DEFAULT_SLICE_COLUMNS, SLICE_MAX_VALUES
    from pipelines.inputs.spans import DEFAULT_WINDOW

    group.add_argument("--span", help="with span folders: run this span (N, or YYYYMMDD) instead of the newest")
    group.add_argument("--window", type=int, help=f"with span folders: train on the newest N accepted spans "
                                                     f"(default {DEFAULT_WINDOW})")
    group.add_argument("--delimiter", help="the CSV's delimiter (default: sniffed among , ; tab |)")
    group.add_argument("--encoding", default="utf-8", help="the CSV's text encoding (default utf-8, BOM or not)")
    group.add_argument("--na-values", type=_names, default=(), metavar="TOKEN,...",
                         help="more missing-value tokens (always: empty, NA, N/A, NaN, nan, null, NULL, None, ?, -)")
    group.add_argument("--drop", type=_names, default=(), metavar="COL,...", help="columns that are not features")
    group.add_argument("--features", type=_names, default=(), metavar="COL,...", help="only these are features")
    group.add_argument("--categorical", type=_names, default=(), metavar="COL,...",
                         help="integer columns to read as categories")
    group.add_argument("--datetime", type=_names, default=(), metavar="COL,...",
                         help="date-time columns (found on their own when ISO 8601 or YYYY/MM/DD; "
                              "Unix seconds need it)")
    group.add_argument("--text", type=_names, default=(), metavar="COL,...",
                         help="free-text columns, tokenized into words (found on their own when most values hold "
                              "several words and there are many distinct ones)")
    group.add_argument("--text-ngrams", type=int, default=None, metavar="|".join(map(str, TEXT_NGRAMS)),
                         help=f"text tokens: words (1), and word pairs (2), and triples (3), each in the "
                              f"column's vocabulary (default {DEFAULT_TEXT_NGRAMS})")
    group.add_argument("--slice", dest="slices", type=_names_or_none, metavar="COL,...|none",
                         help=f"the columns the evaluation is sliced on (categories of at most {SLICE_MAX_VALUES} "
                              f"values; default: the {DEFAULT_SLICE_COLUMNS} categorical features with the fewest "
                              "values)")


def _image_options(group: Any) -> None:
    """Images from a folder or a CSV of paths: ImageOptions."""
    group.add_argument("--image-column", help="images from a CSV: the column of image paths (relative to the CSV)")
    group.add_argument("--image-size", type=int, help="the side images are resized to (default: from the images' "
                                                         "median size and the family, at most 128)")
    group.add_argument("--augment", type=_names_or_none, metavar="flip,rotate,zoom,contrast|none",
                         help="training-only image augmentation (default: flip,rotate,zoom)")


def _transfer_options(group: Any) -> None:
    """Transfer learning and distillation: TransferOptions."""
    group.add_argument("--pretrained", metavar="SOURCE",
                         help="transfer learning from keras:mobilenet_v2|resnet50|efficientnet_b0 (ImageNet) or "
                              "models:/NAME@ALIAS|models:/NAME/VERSION (a model of ours): frozen base, new head, "
                              "then fine-tuning")
    group.add_argument("--weights", metavar="FILE", help="the Keras application's ImageNet weights (default: "
                                                          "fetched once into <home>/weights)")
    group.add_argument("--fine-tune-layers", type=int, metavar="N",
                         help="base layers unfrozen in the second phase (default 20; 0: head only)")
    group.add_argument("--distill-from", metavar="models:/NAME@ALIAS",
                         help="train the model as a student of this teacher (--hparam temperature=T, distill_alpha=A)")


def _forecast_options(group: Any) -> None:
    """A series of your own (--task forecast --data F): ForecastOptions."""
    group.add_argument("--time", metavar="COL", help="the time column: dates (YYYY-MM-DD, YYYY/MM/DD, MM/DD/YYYY, "
                                                    "Unix seconds), years, YYYY-MM, 'YYYY Q1' or decimal years; "
                                                    "daily, weekly, monthly, quarterly or yearly steps")
    group.add_argument("--horizon", type=int, metavar="H", help="steps to forecast; the last H of each series are "
                                                               "the holdout")
    group.add_argument("--series-id", type=_names, default=(), metavar="COL,...",
                       help="a long table of many series: the columns naming each series")
    group.add_argument("--lookback", type=int, metavar="L",
                       help="points a forecast reads (default: max(2 x season, 2 x horizon), within the shortest "
                            "series)")
    group.add_argument("--covariates", type=_names, default=(), metavar="COL,...",
                       help="numeric columns known ahead (a promotion planned, a holiday): the model reads them over "
                            "the window and the forecast steps; a history for `mlops predict` then gives the next H "
                            "rows with them and an empty value")


def _tuning_options(group: Any) -> None:
    """TuningOptions."""
    from components.models.families import TUNERS

    group.add_argument("--tune", choices=TUNERS, help="tune the family's search space first (KerasTuner oracle)")
    group.add_argument("--max-trials", type=int, default=6, help="tuning trials (random, bayesian)")
    group.add_argument("--warm-start", action="store_true",
                         help="start from the last blessed model of the same family and inputs")


def pipeline_options() -> argparse.ArgumentParser:
    """What defines a pipeline: shared by `run`, `compile` and the Airflow/scheduled runs; one
    argument group per option group of the request."""
    from core.config import DEFAULT_MAX_METRIC_DROP

    command = argparse.ArgumentParser(add_help=False, parents=[HOME, TRACKING, beam_options()])
    command.add_argument("usecase", nargs="?", help="a built-in use case (default: fraud)")
    command.add_argument("--data", help="your table: a CSV (any delimiter, .gz too), Parquet, a folder of parts, or "
                                        "a folder of spans span-N/ or YYYYMMDD/ (needs --label); or your images: a "
                                        "folder of class folders, or a CSV of paths (with --image-column)")
    command.add_argument("--label", help="the label column of --data (multilabel: A,B,C; multitask: A:TASK,B:TASK)")
    command.add_argument("--task", help="binary, multiclass, regression, anomaly, multilabel, multitask or forecast "
                                        "(default: inferred from the label)")
    command.add_argument("--name", help="pipeline name (default: the use case or the CSV's file name)")
    command.add_argument("--family", help="model family (default: the use case's, else dnn)")
    command.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE", help="hyperparameter override")
    command.add_argument("--train-workers", type=int, default=1, metavar="N",
                         help="train in N processes on loopback ports (MultiWorkerMirroredStrategy; default 1)")
    command.add_argument("--threshold", type=float, help="bound on the task's gate metric (default: from the data)")
    command.add_argument("--max-drop", type=float, default=DEFAULT_MAX_METRIC_DROP,
                         help="allowed worsening of the gate metric vs the baseline model")
    command.add_argument("--schemas-dir", help="curated schemas (default: the repo's schemas/)")
    command.add_argument("--no-edge", action="store_true", help="skip the TF Lite export (EdgeExport)")
    command.add_argument("--no-cache", action="store_true", help="rerun every component")
    _reading_options(command.add_argument_group("reading --data"))
    _image_options(command.add_argument_group("images"))
    _transfer_options(command.add_argument_group("transfer learning and distillation"))
    _tuning_options(command.add_argument_group("tuning"))
    _forecast_options(command.add_argument_group("forecasting a series (--task forecast)"))
    return command


def _group(options: Any, args: argparse.Namespace) -> Any:
    """An option group of the request, filled from the arguments of the same names."""
    return options(**{f.name: getattr(args, f.name) for f in dataclasses.fields(options)})


def run_request(args: argparse.Namespace) -> RunRequest:
    """The parsed `run`/`compile` arguments as the config factory's request, group by group."""
    with translated(user=(ConfigError,)):
        hparams = parse_hparams(args.hparam)
    return RunRequest(
        use_case=args.usecase, data=args.data, label=args.label, task=args.task, name=args.name, home=args.home,
        metadata_uri=args.metadata_uri, train_workers=args.train_workers,
        family=args.family, hparams=hparams, threshold=args.threshold, max_drop=args.max_drop,
        schemas_dir=args.schemas_dir, edge=not args.no_edge, cache=not args.no_cache, tracking_uri=args.tracking_uri,
        reading=_group(ReadingOptions, args), images=_group(ImageOptions, args),
        transfer=_group(TransferOptions, args), tuning=_group(TuningOptions, args), beam=_group(BeamOptions, args),
        forecast=_group(ForecastOptions, args))


def _run_only(run: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """What `mlops run` takes beyond the pipeline's definition (`compile` shares the rest)."""
    run.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    return run


def run_parser() -> argparse.ArgumentParser:
    """`mlops run`'s arguments on their own: what a DAG file or `mlops schedule` checks run
    arguments with, without the whole command tree."""
    return _run_only(argparse.ArgumentParser(prog="mlops run", parents=[COMMON, pipeline_options()]))


def request_from_argv(argv) -> RunRequest:
    """The request `mlops run ARGV` would make (for entry points such as the Airflow DAG file)."""
    return run_request(run_parser().parse_args(list(argv)))


def configured(args: argparse.Namespace):
    with translated(user=(ConfigError,)):
        return build_config(run_request(args))


def cmd_run(args: argparse.Namespace) -> int:
    """Prepares the inputs and runs the pipeline under `watched`: progress lines on the terminal,
    the libraries' output (from TensorFlow's import on) in the run's log file unless --verbose."""
    import time

    command_started = time.time()
    config = configured(args)  # the preflight reads the data: timed, shown as the first step
    with translated(refused=(ServiceUnreachable,)):
        check_services(config.beam_args)
    configure_seconds = time.time() - command_started
    if not args.no_tracking:  # a shared server that refuses this caller refuses the run before anything is pushed
        from release.mlflow_registry import AccessError, check_access

        with translated(refused=(AccessError,)):
            check_access(config.mlflow_uri)
    quiet_pipeline_runtime(args.verbose)
    from core.metadata_store import MetadataUnreachable

    with translated(refused=(MetadataUnreachable,)):  # a database store that fails says so now, by name
        config.home.metadata.check()
    from pipelines.runners.progress import watched, write_timings

    with watched(config, verbose=args.verbose) as progress:
        progress.step("configure (preflight)", config.task_name, configure_seconds)
        with translated(user=(ConfigError,)), progress.timed("inputs"):
            config = prepare_inputs(config)
        from pipelines.runners.local import run_pipeline

        pipeline_started = time.monotonic()
        report = run_pipeline(config, track=not args.no_tracking, progress=progress)
        pipeline_seconds = time.monotonic() - pipeline_started
    from pipelines.summary import format_summary

    report.log_path = str(progress.log_path) if progress.log_path else None
    if progress.log_path:
        from release.tracking import run_tags

        write_timings(progress.log_path.with_suffix(".timings.json"), progress, command_started, pipeline_seconds,
                      run_tags(report))
    print(format_summary(config, report), flush=True)
    return EXIT_OK if report.succeeded else EXIT_REFUSED


def _vertex_training(args: argparse.Namespace):
    from components.tf_config import MAX_TRAIN_WORKERS
    from core.config import VertexTraining

    if not 1 <= args.trainer_replicas <= MAX_TRAIN_WORKERS:
        raise UserError(f"--trainer-replicas {args.trainer_replicas}: give 1 to {MAX_TRAIN_WORKERS}")
    missing = [flag for flag, value in (("--vertex-project", args.vertex_project),
                                        ("--vertex-region", args.vertex_region)) if not value]
    if missing:
        raise UserError(f"--trainer-replicas needs {' and '.join(missing)} (the Vertex AI Training job's)")
    return VertexTraining(args.trainer_replicas, args.trainer_machine, args.vertex_project, args.vertex_region,
                          args.image)


def cmd_compile(args: argparse.Namespace) -> int:
    """The pipeline spec for Kubeflow Pipelines v2 / Vertex (the data is profiled locally)."""
    if not args.pipeline_root.startswith(("gs://", "s3://", "/")) or not args.data_uri.strip("/"):
        raise UserError(f"--pipeline-root {args.pipeline_root!r}: give a URI such as gs://bucket/mlops")
    config = configured(args)
    if config.span_pattern:
        raise UserError("span folders run their drift gate and training window through this project's own ML "
                        "Metadata resolvers, which Kubeflow v2 cannot compile; compile a single input file")
    if args.trainer_replicas is not None:
        config = dataclasses.replace(config, vertex_training=_vertex_training(args))
    quiet_pipeline_runtime(args.verbose)
    from pipelines.runners.kubeflow import compile_kubeflow

    path = compile_kubeflow(config, Path(args.output), args.pipeline_root, args.data_uri, args.image)
    print(f"{path}: Kubeflow v2 pipeline spec for '{config.name}' (image {args.image}, root {args.pipeline_root})")
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from pipelines.inputs.synthetic import LABEL, write_spans, write_transactions

    try:
        if args.spans:
            write_spans(Path(args.output), args.spans, args.rows, args.seed)
            path, what = Path(args.output).resolve(), f"{args.spans} spans (span-N/data.csv) of {args.rows} rows"
        else:
            path, what = write_transactions(Path(args.output), args.rows, args.seed), f"{args.rows} rows"
    except (ValueError, OSError) as e:
        raise UserError(f"{args.output}: {e}") from None
    print(f"{path}: {what}; run it with: mlops run --data {path} --label {LABEL} --task binary")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    """The curated schema of a pipeline, from its last run's, with drift comparators."""
    from pipelines.inputs.schema import (
        REPO_SCHEMAS,
        SCHEMA_FILE,
        SchemaExistsError,
        latest_pipeline_schema,
        write_curated_schema,
    )

    home = home_of(args)
    target = Path(args.schemas_dir or REPO_SCHEMAS) / args.name / SCHEMA_FILE
    with translated(user=(FileNotFoundError, SchemaExistsError, ValueError)):
        source = latest_pipeline_schema(home.metadata, args.name)
        write_curated_schema(source, target, args.categorical_drift, args.numeric_drift, args.force)
    print(f"{target}: curated schema of '{args.name}' (from {source}) with drift comparators: L-infinity "
          f"{args.categorical_drift:g} on categorical, Jensen-Shannon {args.numeric_drift:g} on numeric features; "
          f"later runs import it and a new span drifting past them is refused")
    return EXIT_OK


def register(sub) -> None:
    from components.comparators import DEFAULT_CATEGORICAL_THRESHOLD, DEFAULT_NUMERIC_THRESHOLD
    from pipelines.runners.kubeflow import DEFAULT_IMAGE

    pipeline = pipeline_options()
    _run_only(add_command(sub, "run", cmd_run, "run a pipeline end to end (default: the 'fraud' use case)", pipeline))

    compile_ = add_command(sub, "compile", cmd_compile,
                           "compile the pipeline for an orchestrator (Kubeflow v2 / Vertex)", pipeline)
    compile_.add_argument("--kubeflow", action="store_true", required=True,
                          help="KFP v2 / Vertex AI pipeline spec (TFX's KubeflowV2DagRunner)")
    compile_.add_argument("--output", required=True, help="FILE.json to write")
    compile_.add_argument("--pipeline-root", required=True, help="root URI of every artifact, e.g. gs://bucket/mlops")
    compile_.add_argument("--data-uri", required=True, help="where the input file is uploaded, e.g. gs://bucket/x.csv")
    compile_.add_argument("--image", default=DEFAULT_IMAGE, help="container image holding this project")
    vertex = compile_.add_argument_group("the Trainer on Vertex AI Training (TFX's Vertex Trainer)")
    vertex.add_argument("--trainer-replicas", type=int, metavar="N",
                        help="a chief and N - 1 workers training together (MultiWorkerMirroredStrategy)")
    vertex.add_argument("--trainer-machine", default="n1-standard-4", metavar="TYPE", help="their machine type")
    vertex.add_argument("--vertex-project", help="the Google Cloud project of the training job")
    vertex.add_argument("--vertex-region", help="its region, e.g. us-central1")

    generate = add_command(sub, "generate", cmd_generate, "write a synthetic tabular CSV of any size (scale runs)")
    generate.add_argument("output", help="FILE.csv to write (with --spans: the folder of span-N/data.csv)")
    generate.add_argument("--rows", type=int, default=1_000_000, help="rows (per span)")
    generate.add_argument("--spans", type=int, help="write this many span folders instead of one file")
    generate.add_argument("--seed", type=int, default=0)

    schema = add_command(sub, "schema", cmd_schema, "write the curated schema <schemas>/NAME/schema.pbtxt from the "
                         "last run's, with drift comparators (the drift gate between spans)", HOME)
    schema.add_argument("name", help="pipeline name")
    schema.add_argument("--schemas-dir", help="curated schemas (default: the repo's schemas/)")
    schema.add_argument("--categorical-drift", type=float, default=DEFAULT_CATEGORICAL_THRESHOLD,
                        help="L-infinity threshold between consecutive spans (categorical features)")
    schema.add_argument("--numeric-drift", type=float, default=DEFAULT_NUMERIC_THRESHOLD,
                        help="Jensen-Shannon divergence threshold between consecutive spans (numeric features)")
    schema.add_argument("--force", action="store_true", help="replace an existing curated schema")
