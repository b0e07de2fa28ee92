"""`mlops`: the command line. Input is checked before TensorFlow or TFX is imported, so a bad
argument or file fails in about a second with one line naming the problem (exit code 2)."""
import argparse
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

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


def build_config(args: argparse.Namespace):
    """Validates arguments and data (no TensorFlow import) and returns the PipelineConfig."""
    from components.models.registry import UnsupportedModelError, get_family, resolve_hparams
    from components.tasks import UnknownTaskError, get_task
    from pipelines.config import PipelineConfig, default_gate_threshold
    from pipelines.datasets import DEFAULT_USE_CASE, USE_CASES, materialize
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
            data_path, label, task_name = Path(args.data).expanduser().resolve(), args.label, args.task
            name = args.name or data_path.stem
        else:
            usecase_name = args.usecase or DEFAULT_USE_CASE
            if usecase_name not in USE_CASES:
                raise CliError(f"unknown use case '{usecase_name}'; use cases: {', '.join(sorted(USE_CASES))}")
            usecase = USE_CASES[usecase_name]
            label, task_name, name = usecase.label, args.task or usecase.task, args.name or usecase.name
            data_path = None
        task = get_task(task_name)
        get_family(args.family, task.name)
        resolve_hparams(args.family, _parse_hparams(args.hparam))
        schema_path = curated_schema(name, Path(args.schemas_dir) if args.schemas_dir else None)
        if data_path is None:
            data_path = materialize(usecase, home.data_dir(name))
        profile = profile_csv(data_path, label, task, feature_kinds(schema_path) if schema_path else None)
    except (UnknownTaskError, UnsupportedModelError, InputDataError, ValueError) as e:
        raise CliError(str(e)) from None
    return PipelineConfig(
        name=name, data_path=data_path, label=label, task_name=task.name, home=home, family=args.family,
        hparams=_parse_hparams(args.hparam), schema_path=schema_path,
        gate_threshold=args.threshold if args.threshold is not None else default_gate_threshold(task, profile),
        max_metric_drop=args.max_drop, enable_cache=not args.no_cache, string_features=profile.strings,
    )


def cmd_run(args: argparse.Namespace) -> int:
    config = build_config(args)
    _quiet_runtime()
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    from pipelines.local_runner import format_summary, run_pipeline

    report = run_pipeline(config, track=not args.no_tracking)
    print(format_summary(config, report), flush=True)
    return EXIT_OK if report.succeeded else EXIT_FAILED


def parser() -> argparse.ArgumentParser:
    from pipelines.config import DEFAULT_MAX_METRIC_DROP

    top = argparse.ArgumentParser(prog="mlops", description="TFX pipelines from data to a served model.")
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a pipeline end to end (default: the 'fraud' use case)")
    run.add_argument("usecase", nargs="?", help="a built-in use case (default: fraud)")
    run.add_argument("--data", help="your CSV file (needs --label and --task)")
    run.add_argument("--label", help="the label column of --data")
    run.add_argument("--task", help="binary, multiclass or regression")
    run.add_argument("--name", help="pipeline name (default: the use case or the CSV's file name)")
    run.add_argument("--home", help="home dir of all stores (default: $MLOPS_HOME or ./.mlops)")
    run.add_argument("--family", default="dnn", help="model family (default: dnn)")
    run.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE", help="hyperparameter override")
    run.add_argument("--threshold", type=float, help="bound on the task's gate metric (default: from the data)")
    run.add_argument("--max-drop", type=float, default=DEFAULT_MAX_METRIC_DROP,
                     help="allowed worsening of the gate metric vs the baseline model")
    run.add_argument("--schemas-dir", help="curated schemas (default: the repo's schemas/)")
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
