"""Beam's Python job service, running each job on as many SDK workers as the job asks for
(``--sdk_worker_parallelism``, what `mlops ... --runner portable --beam-workers N` sets).

Beam 2.59's own service (apache_beam.runners.portability.local_job_service_main) runs every job on
an FnApiRunner with one worker: the runner reads a worker count only in ``run_pipeline`` (from
``--direct_num_workers``), and the service calls ``run_via_runner_api``. This one is the same
servicer (LocalJobServicer, its ``beam_job_type`` hook) whose jobs set that count first; the
FnApiRunner then asks the worker pool for that many workers and splits each stage's input between
them, as DirectRunner's multi_processing mode does with its subprocesses.

    python -m ops.beam_job_service --port P --staging_dir DIR
"""
import argparse
import logging
import signal
import sys
import time
from typing import List

from apache_beam.options.pipeline_options import PortableOptions
from apache_beam.portability.api import beam_job_api_pb2
from apache_beam.runners.portability import local_job_service
from apache_beam.runners.portability.fn_api_runner import fn_runner


def sdk_workers(options) -> int:
    """The job's SDK worker count: --sdk_worker_parallelism (Beam parses it as a string; 0 or
    less is "the runner chooses", which here is one)."""
    try:
        asked = int(options.view_as(PortableOptions).sdk_worker_parallelism)
    except (TypeError, ValueError):
        return 1
    return max(asked, 1)


class ParallelBeamJob(local_job_service.BeamJob):
    """A job whose FnApiRunner runs ``sdk_workers(options)`` workers."""

    def _invoke_runner(self):
        self.set_state(beam_job_api_pb2.JobState.RUNNING)
        options = self.pipeline_options()
        runner = fn_runner.FnApiRunner(provision_info=self._provision_info)
        # the attribute run_pipeline sets from --direct_num_workers; run_via_runner_api reads it
        runner._num_workers = sdk_workers(options)
        return runner.run_via_runner_api(self._pipeline_proto, options)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.beam_job_service")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--staging_dir", required=True)
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    servicer = local_job_service.LocalJobServicer(options.staging_dir, beam_job_type=ParallelBeamJob)
    port = servicer.start_grpc_server(options.port)
    logging.info("Listening for beam jobs on port %d.", port)
    try:
        while True:  # in slices: SIGTERM handed to a gRPC thread runs its handler at the main thread's next bytecode
            time.sleep(1)
    finally:
        servicer.stop()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.exit(main(sys.argv[1:]))
