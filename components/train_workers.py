"""Training on several workers (``mlops run --train-workers N``): the Trainer's executor starts N
processes on loopback ports, each with its TF_CONFIG, each running the same run_fn on the same
inputs under tf.distribute.MultiWorkerMirroredStrategy (components.training_loop.strategy reads
TF_CONFIG). Worker 0 is the chief: it writes the model, the run files and the backups where the
Trainer's outputs are; the others write theirs to temporary folders they delete, as TensorFlow's
multi-worker Keras guide has it. A collective strategy has to be made before TensorFlow runs
anything in its process, so the executor's own process (which ran other components) trains nothing.

    python -m components.train_workers WORKDIR   (what the executor starts, TF_CONFIG set; not for users)
"""
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from tfx.components.trainer.executor import GenericExecutor

from components.ports import free_ports
from components.tf_config import TrainCluster, TrainWorkersError, cluster_from_env

WAIT_SECONDS = 6 * 3600  # a training's bound: the workers are stopped past it
JOB_FILE = "job.json"


def train_workers_of(exec_properties: Dict[str, Any]) -> int:
    custom = exec_properties.get("custom_config") or "{}"
    return int((json.loads(custom) if isinstance(custom, str) else custom).get("train_workers", 1))


class MultiWorkerTrainerExecutor(GenericExecutor):
    """TFX's GenericExecutor when one worker trains; else the run_fn in N worker processes."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        workers = train_workers_of(exec_properties)
        if workers <= 1:
            return super().Do(input_dict, output_dict, exec_properties)
        from tfx.types import artifact_utils

        with tempfile.TemporaryDirectory(prefix="mlops-train-workers-") as workdir:
            job = {"input": artifact_utils.jsonify_artifact_dict(input_dict),
                   "output": artifact_utils.jsonify_artifact_dict(output_dict),
                   "exec_properties": exec_properties}
            Path(workdir, JOB_FILE).write_text(json.dumps(job))
            addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)]
            run_workers(workdir, addresses)
        return None


def run_workers(workdir: str, addresses: List[str]) -> None:
    """Every worker to its end; the first to fail stops the others and is named."""
    processes = []
    for index in range(len(addresses)):
        env = {**os.environ, "TF_CONFIG": TrainCluster(addresses, index).tf_config()}
        log = open(Path(workdir) / f"worker-{index}.log", "wb")
        processes.append((subprocess.Popen([sys.executable, "-m", "components.train_workers", workdir],
                                           stdout=log, stderr=subprocess.STDOUT, env=env), log))
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        while True:
            codes = [p.poll() for p, _ in processes]
            failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                raise TrainWorkersError(_failure(workdir, failed[0], codes[failed[0]]))
            if all(code == 0 for code in codes):
                return
            if time.monotonic() > deadline:
                raise TrainWorkersError(_failure(workdir, codes.index(None), None))
            time.sleep(0.5)
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()


def _failure(workdir: str, index: int, code: Optional[int]) -> str:
    lines = (Path(workdir) / f"worker-{index}.log").read_text(errors="replace").strip().splitlines()
    last = next((line for line in reversed(lines) if line.strip() and not line.startswith(" ")), "no output")
    what = f"exited with {code}" if code is not None else f"did not finish in {WAIT_SECONDS} s"
    return f"training worker {index} of the --train-workers run {what}: {last[-300:]}"


CHIEF_WAIT_SECONDS = 600  # a worker's wait for the chief's model after its own


@contextlib.contextmanager
def worker_outputs(fn_args: Any) -> Iterator[Optional[str]]:
    """A worker other than the chief trains like the chief (the collectives need every one) but
    writes its model and run files to a scratch folder, yielded (None for the chief or a lone
    worker; its backups go there too), and returns once the chief's model is there: TFX's executor
    then finds a model where the Trainer's output is, here or on Vertex AI Training."""
    cluster = cluster_from_env()
    if cluster is None or cluster.is_chief:
        yield None
        return
    chief_model = fn_args.serving_model_dir
    scratch = tempfile.mkdtemp(prefix=f"mlops-worker-{cluster.index}-")
    fn_args.serving_model_dir = os.path.join(scratch, "model")
    fn_args.model_run_dir = os.path.join(scratch, "model_run")
    try:
        yield scratch
        import tensorflow as tf

        deadline = time.monotonic() + CHIEF_WAIT_SECONDS
        while not tf.io.gfile.exists(chief_model) and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        fn_args.serving_model_dir = chief_model


def _worker(workdir: str) -> None:
    """One local worker: the strategy first (before TensorFlow runs anything), then TFX's executor
    with the Trainer's run_fn on the job's inputs (run_fn keeps a non-chief's outputs apart)."""
    from tfx.types import artifact_utils

    from components import training_loop

    training_loop.strategy()  # MultiWorkerMirroredStrategy from TF_CONFIG, made first
    job = json.loads(Path(workdir, JOB_FILE).read_text())
    GenericExecutor().Do(artifact_utils.parse_artifact_dict(job["input"]),
                         artifact_utils.parse_artifact_dict(job["output"]), dict(job["exec_properties"]))


if __name__ == "__main__":
    _worker(sys.argv[1])
