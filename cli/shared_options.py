"""Options shared by several commands, declared once (argparse parent parsers), and the runtime
switches a command sets before TensorFlow loads."""
import argparse
import os
import warnings

from core.home import DEFAULT_HOME, HOME_ENV, TRACKING_ENV


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


COMMON = _parent()
COMMON.add_argument("--verbose", action="store_true",
                    help="show TensorFlow/Beam logs and the traceback of an unexpected error")

HOME = _parent()
HOME.add_argument("--home", help=f"home dir of all stores (default: ${HOME_ENV} or ./{DEFAULT_HOME})")

TRACKING = _parent()
TRACKING.add_argument("--tracking-uri",
                      help=f"MLflow tracking/registry URI (default: ${TRACKING_ENV}, else <home>/mlflow.db)")


def beam_options() -> argparse.ArgumentParser:
    from core.config import BEAM_MODES

    beam = _parent()
    beam.add_argument("--beam-mode", choices=BEAM_MODES, default="in_memory",
                      help="DirectRunner mode (default in_memory: fastest on small data)")
    beam.add_argument("--beam-workers", type=int, default=1, help="DirectRunner workers (multi_processing: processes)")
    beam.add_argument("--beam-arg", dest="beam_args", action="append", default=[], metavar="ARG",
                      help="passed to Beam as is, e.g. --beam-arg=--runner=DataflowRunner --beam-arg=--project=P")
    return beam


def add_command(sub, name: str, handler, help_text: str, *parents: argparse.ArgumentParser,
                **kwargs) -> argparse.ArgumentParser:
    """A subcommand with the common options and the given shared ones."""
    command = sub.add_parser(name, help=help_text, parents=[COMMON, *parents], **kwargs)
    command.set_defaults(handler=handler)
    return command


def quiet_runtime(verbose: bool = False) -> None:
    """Before TensorFlow loads: no C++ chatter and no deprecation noise unless --verbose."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def quiet_pipeline_runtime(verbose: bool = False) -> None:
    """quiet_runtime, and absl (TFX, Beam, TFDV) at errors only: for commands that run pipelines."""
    quiet_runtime(verbose)
    if not verbose:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
