"""Options shared by several commands, declared once (argparse parent parsers), and the runtime
switches a command sets before TensorFlow loads."""
import argparse
import logging
import os
import warnings
from typing import Tuple

from core.home import DEFAULT_HOME, HOME_ENV, TRACKING_ENV
from core.metadata_store import METADATA_ENV


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


COMMON = _parent()
COMMON.add_argument("--verbose", action="store_true",
                    help="show TensorFlow/Beam logs and the traceback of an unexpected error")

HOME = _parent()
HOME.add_argument("--home", help=f"home dir of all stores (default: ${HOME_ENV} or ./{DEFAULT_HOME})")
HOME.add_argument("--metadata-uri", metavar="mysql://USER:PASSWORD@HOST:PORT/DB",
                  help=f"ML Metadata in a shared MySQL/MariaDB database (default: ${METADATA_ENV}, else "
                       "<home>/metadata.sqlite)")


def home_of(args: argparse.Namespace):
    """The command's core.home.Home (--home, --metadata-uri); a bad URI is one line, exit 2."""
    from cli.exit_codes import translated
    from core.home import Home
    from core.metadata_store import MetadataUriError

    with translated(user=(MetadataUriError,)):
        return Home.resolve(args.home, args.metadata_uri)

TRACKING = _parent()
TRACKING.add_argument("--tracking-uri",
                      help=f"MLflow tracking/registry URI (default: ${TRACKING_ENV}, else <home>/mlflow.db)")


def beam_options() -> argparse.ArgumentParser:
    """The Beam runner and its options (core.beam_runners.BeamOptions, fields of the same names)."""
    from core.beam_runners import RUNNERS
    from core.config import BEAM_MODES

    beam = _parent()
    group = beam.add_argument_group("Beam runner (docs/operations.md)")
    group.add_argument("--runner", choices=RUNNERS, default="direct",
                       help="where Beam runs the data steps (default direct: in this process)")
    group.add_argument("--beam-mode", choices=BEAM_MODES, default="in_memory",
                       help="DirectRunner mode (default in_memory: fastest on small data)")
    group.add_argument("--beam-workers", type=int, default=1,
                       help="DirectRunner workers (multi_processing: processes); portable: SDK workers per "
                            "node (Flink's, Spark's job server); flink: parallelism; dataflow: workers")
    group.add_argument("--job-endpoint", metavar="HOST:PORT", help="portable: the job service")
    group.add_argument("--worker-pool", metavar="HOST:PORT",
                       help="portable, flink, spark: an SDK worker pool (environment EXTERNAL)")
    group.add_argument("--environment-type", metavar="DOCKER|PROCESS|EXTERNAL|LOOPBACK",
                       help="portable, flink, spark: the SDK harness environment")
    group.add_argument("--environment-config", metavar="CONFIG", help="the environment's image, command or address")
    group.add_argument("--sdk-container-image", metavar="IMAGE",
                       help="an SDK image holding this project (default: this repo's setup.py is staged)")
    group.add_argument("--flink-master", metavar="HOST:PORT", help="flink: the cluster's REST endpoint")
    group.add_argument("--spark-master", metavar="spark://HOST:PORT", help="spark: the master")
    group.add_argument("--project", help="dataflow: the Google Cloud project")
    group.add_argument("--region", help="dataflow: the region")
    group.add_argument("--temp-location", metavar="gs://...", help="dataflow: a folder for temporary files")
    group.add_argument("--beam-arg", dest="beam_args", action="append", default=[], metavar="ARG",
                       help="any other Beam option, passed as is, e.g. --beam-arg=--max_num_workers=10")
    return beam


def beam_request(args: argparse.Namespace):
    """The parsed runner flags as core.beam_runners.BeamOptions."""
    import dataclasses

    from core.beam_runners import BeamOptions

    return BeamOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BeamOptions)})


def beam_pipeline_args(args: argparse.Namespace) -> Tuple[str, ...]:
    """Beam's args for the runner flags of `score` and `skew`: options the runner cannot run with
    are bad input (exit 2); a job service or worker pool that does not answer, a refusal (exit 1)."""
    from cli.exit_codes import translated
    from core.beam_runners import RunnerError, ServiceUnreachable, check_services, pipeline_args

    with translated(user=(RunnerError,)):
        beam = pipeline_args(beam_request(args))
    with translated(refused=(ServiceUnreachable,)):
        check_services(beam)
    return beam


def add_command(sub, name: str, handler, help_text: str, *parents: argparse.ArgumentParser,
                **kwargs) -> argparse.ArgumentParser:
    """A subcommand with the common options and the given shared ones."""
    command = sub.add_parser(name, help=help_text, parents=[COMMON, *parents], **kwargs)
    command.set_defaults(handler=handler)
    return command


def quiet_runtime(verbose: bool = False, cpp_errors: bool = True) -> None:
    """Before TensorFlow loads: no C++ chatter and no deprecation noise unless --verbose. Without
    ``cpp_errors`` (serving and promotion, whose stderr the user reads), TensorFlow's C++ error lines
    go too: on a machine without a GPU, TF 2.16 prints three at import ('Unable to register cuDNN
    factory ...', tensorflow#62075) that mean nothing; a real failure still reaches Python as an
    exception, said in one line."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if cpp_errors else "3")
    # ml-metadata's C++ side (glog): not its error lines, which the exception it raises carries (and
    # the CLI says in one line)
    os.environ.setdefault("GLOG_minloglevel", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def quiet_pipeline_runtime(verbose: bool = False, cpp_errors: bool = True) -> None:
    """quiet_runtime, and absl (TFX, Beam, TFDV) at errors only: for commands that run pipelines.
    Without ``cpp_errors`` (batch scoring and skew, whose stderr the user reads: no run log takes
    the libraries' output), TensorFlow's C++ error lines and Beam's warnings go too ('Couldn't find
    python-snappy', 'oneDNN supports DT_INT64 only ...'): a real failure still reaches Python."""
    quiet_runtime(verbose, cpp_errors)
    if not verbose:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
        if not cpp_errors:  # Beam logs a worker's exception with its traceback before re-raising it
            logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
