"""TF_CONFIG, the cluster description TensorFlow's multi-worker strategies read: this process's place
among the training workers (components.train_workers writes it for local workers; Vertex AI
Training sets it for its replicas). Pure Python."""
import json
import os
from dataclasses import dataclass
from typing import Optional, Sequence

MAX_TRAIN_WORKERS = 16  # --train-workers, --trainer-replicas


class TrainWorkersError(RuntimeError):
    """A worker that failed or a TF_CONFIG that does not describe a cluster (one line)."""


@dataclass(frozen=True)
class TrainCluster:
    """This process's place among the training workers, as TF_CONFIG gives it."""
    workers: Sequence[str]  # host:port of each
    index: int

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    def tf_config(self) -> str:
        return json.dumps({"cluster": {"worker": list(self.workers)}, "task": {"type": "worker", "index": self.index}})


def cluster_from_env(environ=os.environ) -> Optional[TrainCluster]:
    """The cluster of TF_CONFIG when it names more than one worker (a chief counts as a worker), else None."""
    text = environ.get("TF_CONFIG", "")
    if not text:
        return None
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        workers = list(cluster.get("chief", [])) + list(cluster.get("worker", []))
        index = int(task["index"]) + (len(cluster.get("chief", [])) if task["type"] == "worker" else 0)
    except (ValueError, KeyError, TypeError) as e:
        raise TrainWorkersError(f"TF_CONFIG does not describe a cluster and this task in it ({e})") from None
    if not 0 <= index < len(workers):
        raise TrainWorkersError(f"TF_CONFIG: task {task} is not among the {len(workers)} workers")
    return TrainCluster(workers, index) if len(workers) > 1 else None
