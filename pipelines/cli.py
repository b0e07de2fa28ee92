"""`mlops`: the command line. Input is checked before TensorFlow or TFX is imported, so a bad
argument or file fails in about a second with one line naming the problem (exit code 2)."""
import argparse
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
    from pipelines.config import PipelineConfig, default_gate_threshold
    from pipelines.datasets import DEFAULT_USE_CASE, USE_CASES, UseCase, materialize, naive_forecast_mae
    from pipelines.home import Home
    from pipelines.preflight import InputDataError, profile_csv
    from pipelines.schema import curated_schema, feature_kinds

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
        schema_path = curated_schema(name, Path(args.schemas_dir) if args.schemas_dir else None)
        if data_path is None:
            data_path = materialize(usecase, home.data_dir(name))
        targets = [(label, get_task(subtask)) for label, subtask in usecase.targets]
        if usecase.input_format == "csv":
            profile = profile_csv(data_path, targets, feature_kinds(schema_path) if schema_path else None)
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
        warm_start=args.warm_start,
    )


def cmd_run(args: argparse.Namespace) -> int:
    config = build_config(args)
    _quiet_runtime()
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    from pipelines.local_runner import format_summary, run_pipeline

    report = run_pipeline(config, track=not args.no_tracking)
    print(format_summary(config, report), flush=True)
    return EXIT_OK if report.succeeded else EXIT_FAILED


def parser() -> argparse.ArgumentParser:
    from components.models.registry import TUNERS
    from pipelines.config import DEFAULT_MAX_METRIC_DROP

    top = argparse.ArgumentParser(prog="mlops", description="TFX pipelines from data to a served model.")
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a pipeline end to end (default: the 'fraud' use case)")
    run.add_argument("usecase", nargs="?", help="a built-in use case (default: fraud)")
    run.add_argument("--data", help="your CSV file (needs --label and --task)")
    run.add_argument("--label", help="the label column of --data (multilabel: A,B,C; multitask: A:TASK,B:TASK)")
    run.add_argument("--task", help="binary, multiclass, regression, anomaly, multilabel or multitask")
    run.add_argument("--name", help="pipeline name (default: the use case or the CSV's file name)")
    run.add_argument("--home", help="home dir of all stores (default: $MLOPS_HOME or ./.mlops)")
    run.add_argument("--family", help="model family (default: the use case's, else dnn)")
    run.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE", help="hyperparameter override")
    run.add_argument("--threshold", type=float, help="bound on the task's gate metric (default: from the data)")
    run.add_argument("--max-drop", type=float, default=DEFAULT_MAX_METRIC_DROP,
                     help="allowed worsening of the gate metric vs the baseline model")
    run.add_argument("--schemas-dir", help="curated schemas (default: the repo's schemas/)")
    run.add_argument("--tune", choices=TUNERS, help="tune the family's search space first (KerasTuner oracle)")
    run.add_argument("--max-trials", type=int, default=6, help="tuning trials (random, bayesian)")
    run.add_argument("--warm-start", action="store_true",
                     help="start from the last blessed model of the same family and inputs")
    run.add_argument("--no-cache", action="store_true", help="rerun every component")
    run.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    run.set_defaults(handler=cmd_run)
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
