"""Progress records of work inside components (training epochs, tuning trials) for a watcher in the
same process, `mlops run`'s progress lines. Plain ``logging``: no TensorFlow import."""
import logging
from typing import Dict

PROGRESS_LOGGER = "mlops.progress"


def log_epoch(epoch: int, epochs: int, metrics: Dict[str, float], stage: str = "") -> None:
    """One finished epoch (1-based) of ``epochs`` planned; ``stage`` names a part, e.g. a tuning trial."""
    logging.getLogger(PROGRESS_LOGGER).info("epoch %d/%d %s", epoch, epochs, stage, extra={
        "epoch": epoch, "epochs": epochs, "metrics": metrics, "stage": stage})
