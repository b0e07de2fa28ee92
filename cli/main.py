"""The `mlops` entry point: the command groups' parsers, and the one error path (a user error is
one line and exit 2, a refusal one line and exit 1; a traceback only with --verbose)."""
import argparse
import atexit
import os
import sys
from typing import List, Optional

from cli import ops, release, run, serve
from cli.exit_codes import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, EXIT_REFUSED, Refused, UserError

GROUPS = (run, serve, release, ops)


def build_parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mlops", description="TFX pipelines from data to a served model.")
    sub = top.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return top


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as e:
        print(f"mlops: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Refused as e:
        print(f"mlops: error: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader stopped reading (`| head`): no more to say, as a process SIGPIPE ends
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as e:  # a bug or an environment failure: one line unless --verbose
        if getattr(args, "verbose", False):
            raise
        print(f"mlops: error: {type(e).__name__}: {e} (rerun with --verbose for the traceback)", file=sys.stderr)
        return EXIT_REFUSED


def _discard_stdout() -> None:
    """What is still buffered for the closed pipe goes nowhere, so the exit's flush raises no second error."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # a stream with no descriptor (a test's capture): nothing to redirect
        pass


def entry() -> None:
    """The console script: ``main``, then the exit handlers, then the process ends without tearing
    down the interpreter module by module, which takes seconds once TensorFlow, Beam, TFX and
    MLflow are loaded. Output is flushed first; ``main`` stays
    usable in-process (tests)."""
    code = main()
    try:
        sys.stdout.flush()  # the last of the output may meet the closed pipe only here
    except BrokenPipeError:
        _discard_stdout()
        code = EXIT_BROKEN_PIPE
    sys.stderr.flush()
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's; elsewhere, a normal exit
    if run_exit_handlers is None:
        sys.exit(code)
    run_exit_handlers()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
