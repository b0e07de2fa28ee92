"""Operations commands: score (batch scoring on Beam), skew (serving vs training), schedule (cron),
status (one screen of the home)."""
import argparse
import contextlib
import io
from pathlib import Path

from cli.exit_codes import EXIT_OK, EXIT_REFUSED, UserError, translated
from cli.shared_options import (
    HOME,
    TRACKING,
    add_command,
    beam_options,
    beam_pipeline_args,
    home_of,
    quiet_pipeline_runtime,
)


def cmd_skew(args: argparse.Namespace) -> int:
    """Serving skew of a version's logged requests vs its training split; exit 1 when skewed."""
    home = home_of(args)
    beam = beam_pipeline_args(args)
    quiet_pipeline_runtime(args.verbose, cpp_errors=False)
    from ops.skew import SkewError, format_skew, skew_for_version

    with translated(user=(SkewError,)):
        version, rows, skews = skew_for_version(
            home, args.name, args.version, Path(args.request_log_dir) if args.request_log_dir else None,
            categorical_threshold=args.categorical_threshold, numeric_threshold=args.numeric_threshold,
            beam_args=beam)
    print(format_skew(args.name, version, rows, skews))
    return EXIT_REFUSED if any(s.flagged for s in skews) else EXIT_OK


def cmd_schedule(args: argparse.Namespace) -> int:
    """A cron entry for scheduled runs of `mlops run RUN_ARGS` (checked by the run parser first)."""
    from cli.run import run_parser
    from ops.schedule import ScheduleError, entry, install
    from pipelines.configure import default_name
    from pipelines.inputs.datasets import DEFAULT_USE_CASE

    run_args = [a for a in args.run_args if a != "--"]
    if "--home" in run_args:
        raise UserError("give --home to `mlops schedule`, not after --")
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            run = run_parser().parse_args(run_args)
    except SystemExit:
        raise UserError(f"`mlops run {' '.join(run_args)}` would not parse (see mlops run --help)") from None
    name = run.name or run.usecase or (default_name(Path(run.data)) if run.data else DEFAULT_USE_CASE)
    if run.data and not Path(run.data).exists():
        raise UserError(f"--data {run.data}: not found; the scheduled run would fail every time")
    if run.data:  # the scheduler's working dir may differ: make the data path absolute
        absolute = str(Path(run.data).resolve())
        run_args = [absolute if a == run.data else a.replace(f"--data={run.data}", f"--data={absolute}")
                    for a in run_args]
    with translated(user=(ScheduleError,)):
        stores = ["--metadata-uri", args.metadata_uri] if args.metadata_uri else []
        promote_stores = ["--tracking-uri", run.tracking_uri] if run.tracking_uri else []  # as the run parsed it
        line = entry(name, args.cron, run_args, home_of(args).root, Path.cwd(), args.promote, stores, promote_stores)
        if args.install:
            install(line, name)
    print(line if not args.install else f"installed in your crontab:\n{line}")
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    """Batch scoring on Beam with a registered model (default: the champion)."""
    home = home_of(args)
    beam = beam_pipeline_args(args)
    quiet_pipeline_runtime(args.verbose, cpp_errors=False)
    from cli.release import registry_errors
    from ops.scoring import ScoringError, resolve_model, score

    with translated(user=(ScoringError, ValueError)), registry_errors():
        model = resolve_model(home, args.name, home.tracking_uri(args.tracking_uri), args.alias, args.version,
                              args.model_dir)
        written = score(model, args.data, Path(args.output), beam)
    print(f"scored {written['rows']} rows with '{model.name}' version {model.version or '-'} "
          f"(serving version {model.serving_version}): {', '.join(written['csv'] + written['tfrecord'])}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Pipelines' last runs, registry aliases, what is served, alarms."""
    from ops.status import collect, format_status
    from release.mlflow_registry import RegistryError

    home = home_of(args)
    if not home.root.is_dir():
        raise UserError(f"{home.root}: no home here (give --home or set $MLOPS_HOME)")
    with translated(refused=(RegistryError,)):
        statuses = collect(home, args.tracking_uri, args.host, args.rest_port)
    print(format_status(home, statuses))
    return EXIT_OK


def register(sub) -> None:
    from components.comparators import DEFAULT_CATEGORICAL_THRESHOLD, DEFAULT_NUMERIC_THRESHOLD
    from serving.options import DEFAULT_HOST, DEFAULT_REST_PORT

    skew = add_command(sub, "skew", cmd_skew,
                       "logged serving requests vs the training data, per feature (exit 1: skewed)", HOME,
                       beam_options())
    skew.add_argument("name")
    skew.add_argument("--version", type=int, help="serving version (default: the newest with request logs)")
    skew.add_argument("--request-log-dir", help="default: <home>/request-logs")
    skew.add_argument("--categorical-threshold", type=float, default=DEFAULT_CATEGORICAL_THRESHOLD,
                      help="L-infinity distance of value frequencies")
    skew.add_argument("--numeric-threshold", type=float, default=DEFAULT_NUMERIC_THRESHOLD,
                      help="approximate Jensen-Shannon divergence")

    status = add_command(sub, "status", cmd_status, "one screen of the home: last runs, aliases, serving, alarms",
                         HOME, TRACKING)
    status.add_argument("--host", default=DEFAULT_HOST, help="where a server may be answering")
    status.add_argument("--rest-port", type=int, default=DEFAULT_REST_PORT)

    schedule = add_command(sub, "schedule", cmd_schedule, "print (or --install) a cron entry for scheduled runs",
                           HOME)
    schedule.add_argument("--cron", default="17 3 * * *", help="cron schedule (default: daily at 03:17)")
    schedule.add_argument("--promote", action="store_true", help="run `mlops promote` after each successful run")
    schedule.add_argument("--install", action="store_true", help="put it in your crontab (replacing this pipeline's)")
    schedule.add_argument("run_args", nargs=argparse.REMAINDER, help="-- then the arguments of `mlops run`")

    scoring = add_command(sub, "score", cmd_score, "batch scoring on Beam with a registered model (default: champion)",
                          HOME, TRACKING, beam_options())
    scoring.add_argument("name", help="registered model (= pipeline name)")
    scoring.add_argument("--data", required=True, help="FILE.csv, or TFRecord files of tf.Examples (file, dir, glob)")
    scoring.add_argument("--output", required=True, help="directory for predictions-*.csv and *.tfrecord.gz")
    pick = scoring.add_mutually_exclusive_group()
    pick.add_argument("--alias", default="champion", help="registry alias (default: champion)")
    pick.add_argument("--version", type=int, help="registry version")
    pick.add_argument("--model-dir", help="score with this SavedModel directory instead of the registry")
