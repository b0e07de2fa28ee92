"""The home directory: one place that holds every store of a local installation.

``<home>/pipelines/<name>``  pipeline root (artifacts)     ``<home>/metadata.sqlite``  ML Metadata
``<home>/mlflow.db``          MLflow tracking + registry     ``<home>/mlartifacts``      MLflow artifacts
``<home>/serving/<name>/<v>`` pushed SavedModels (TF Serving's model base dirs)
``<home>/serving/models.config`` which versions and labels both model servers serve
``<home>/request-logs/<name>/<v>`` sampled serving requests as tf.Examples (skew checks)
``<home>/data/<name>``        data the project generates for its built-in use cases
``<home>/schemas/<name>/<sha>`` the curated schema as each run imported it (content-addressed)
``<home>/training-backups``   per-epoch backups of trainings in progress (resume after a kill)
``<home>/promotions/<name>.jsonl`` promotion and rollback history (mirror of the registry's tags)
``<home>/shadow-logs/<name>.jsonl`` serving and shadow outputs of mirrored requests
``<home>/logs/<name>/<run>.log`` TensorFlow, Beam and absl output of each `mlops run` (unless --verbose)
``<home>/locks/<name>.run.lock`` held by the run of a pipeline in progress (the next one waits)
"""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

DEFAULT_HOME = ".mlops"
HOME_ENV = "MLOPS_HOME"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
SQLITE_PREFIX = "sqlite:///"  # an SQLAlchemy URI of an SQLite file (MLflow's local store)


@dataclass(frozen=True)
class Home:
    root: Path
    metadata_uri: str = ""  # a shared ML Metadata database (core.metadata_store); "": the home's SQLite

    @classmethod
    def resolve(cls, explicit: Optional[str] = None, metadata_uri: Optional[str] = None) -> "Home":
        """--home, else $MLOPS_HOME, else ./.mlops; always absolute. ML Metadata: --metadata-uri, else
        $MLOPS_METADATA_URI, else the home's SQLite file (a bad URI: MetadataUriError, one line)."""
        from core.metadata_store import METADATA_ENV, MetadataStoreSpec

        uri = metadata_uri or os.environ.get(METADATA_ENV, "")
        if uri:
            MetadataStoreSpec.parse(uri)
        return cls(Path(explicit or os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve(), uri)

    def pipeline_root(self, name: str) -> Path:
        return self.root / "pipelines" / name

    @property
    def metadata_path(self) -> Path:
        return self.root / "metadata.sqlite"

    @property
    def metadata(self):
        """ML Metadata's store (core.metadata_store.MetadataStoreSpec)."""
        from core.metadata_store import MetadataStoreSpec

        return MetadataStoreSpec.parse(self.metadata_uri) if self.metadata_uri else \
            MetadataStoreSpec(sqlite=self.metadata_path)

    @property
    def mlflow_uri(self) -> str:
        return f"{SQLITE_PREFIX}{self.root / 'mlflow.db'}"

    def tracking_uri(self, explicit: Optional[str] = None) -> str:
        """--tracking-uri, else $MLFLOW_TRACKING_URI (e.g. an `mlflow server`), else the home's SQLite."""
        return explicit or os.environ.get(TRACKING_ENV) or self.mlflow_uri

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def serving_dir(self) -> Path:
        return self.root / "serving"

    @property
    def request_logs(self) -> Path:
        return self.root / "request-logs"

    def model_base_dir(self, name: str) -> Path:
        return self.serving_dir / name

    def training_backups(self, name: str) -> Path:
        """Per-epoch backups of trainings in progress; a rerun after a kill resumes from here."""
        return self.root / "training-backups" / name

    def curated_schemas(self, name: str) -> Path:
        """Content-addressed copies of the curated schema each run imported."""
        return self.root / "schemas" / name

    def data_dir(self, name: str) -> Path:
        return self.root / "data" / name

    @property
    def shadow_logs(self) -> Path:
        """Shadow traffic compared per request (`mlops serve`'s default; `mlops shadow` reads it)."""
        return self.root / "shadow-logs"

    def run_lock(self, name: str) -> Path:
        """Held while a run of pipeline ``name`` executes and is tracked: runs of it take turns."""
        return self.root / "locks" / f"{name}.run.lock"

    def logs(self, name: str) -> Path:
        """Where `mlops run` writes the libraries' log lines, one file per run."""
        return self.root / "logs" / name
