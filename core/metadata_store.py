"""Where ML Metadata lives: the home's SQLite file (one machine), or a MySQL / MariaDB database a
team shares (``--metadata-uri mysql://USER:PASSWORD@HOST:PORT/DATABASE`` or $MLOPS_METADATA_URI).
ML Metadata 1.16 also has a PostgreSQL source, but TFX's input resolution fails on it (a query
PostgreSQL reads as a syntax error: a second run's Trainer found no examples), so it is refused.
One value for the pipeline (TFX's connection config) and for everything that reads lineage back
(run reports, schemas, skew)."""
import socket
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

METADATA_ENV = "MLOPS_METADATA_URI"
DEFAULT_PORTS = {"mysql": 3306}  # the database servers TFX 1.16's pipelines run on through ML Metadata
ROOT_MARKER = "metadata-store.txt"  # in a pipeline root: the one store whose execution ids name its folders
CONNECT_ATTEMPTS = 3  # ML Metadata makes its tables on first use: two first runs at once may collide once
CONNECT_TIMEOUT_S = 5.0


class MetadataUriError(ValueError):
    """A --metadata-uri that does not name a store (one line)."""


class MetadataUnreachable(Exception):
    """A database store that does not answer, or refuses our login (one line)."""


@dataclass(frozen=True)
class DatabaseStore:
    kind: str  # mysql (MariaDB speaks it too)
    host: str
    port: int
    database: str
    user: str
    password: str = ""


@dataclass(frozen=True)
class MetadataStoreSpec:
    """The home's SQLite file, or a database."""
    sqlite: Optional[Path] = None
    database: Optional[DatabaseStore] = None

    @classmethod
    def parse(cls, uri: str) -> "MetadataStoreSpec":
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme in ("postgresql", "postgres"):
            raise MetadataUriError(f"--metadata-uri {_shown(uri)}: ML Metadata 1.16's PostgreSQL source fails TFX's "
                                   "input resolution (a second run finds no inputs); use a MySQL or MariaDB database")
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname or not parts.path.strip("/") or not parts.username:
            raise MetadataUriError(f"--metadata-uri {_shown(uri)}: expected mysql://USER:PASSWORD@HOST[:PORT]/DATABASE "
                                   "(without it, ML Metadata is the home's SQLite file)")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise MetadataUriError(f"--metadata-uri {_shown(uri)}: the port is not a number") from None
        return cls(database=DatabaseStore(parts.scheme, parts.hostname, port, parts.path.strip("/"),
                                          urllib.parse.unquote(parts.username),
                                          urllib.parse.unquote(parts.password or "")))

    def connection_config(self, readonly: bool = False):
        """TFX's / ML Metadata's ConnectionConfig: SQLite read-only for reports, else opened and
        created by the runner (no I/O here: an Airflow scheduler parsing the DAG writes nothing)."""
        from ml_metadata.proto import metadata_store_pb2

        config = metadata_store_pb2.ConnectionConfig()
        store = self.database
        if store is not None:
            config.mysql.host, config.mysql.port, config.mysql.database = store.host, store.port, store.database
            config.mysql.user, config.mysql.password = store.user, store.password
            return config
        config.sqlite.filename_uri = str(self.sqlite)
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY if readonly else \
            metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        return config

    @property
    def location(self) -> str:
        """Which store this is, whoever logs in to it: the file, or the server's database."""
        store = self.database
        return f"{store.kind}://{store.host}:{store.port}/{store.database}" if store else str(self.sqlite)

    def check(self) -> None:
        """A database store answers and takes our login (ML Metadata makes its tables on this first
        open), else MetadataUnreachable naming the store and which of the two failed: ml-metadata's
        own error names neither (``mysql_real_connect failed: errno: , error:``)."""
        store = self.database
        if store is None:
            return
        try:
            socket.create_connection((store.host, store.port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            raise MetadataUnreachable(f"ML Metadata at {self}: nothing answers at {store.host}:{store.port} "
                                      f"({e.strerror or e})") from None
        from ml_metadata import metadata_store

        for attempt in range(CONNECT_ATTEMPTS):
            try:
                metadata_store.MetadataStore(self.connection_config())
                return
            except RuntimeError as e:
                if attempt + 1 == CONNECT_ATTEMPTS:
                    text = " ".join(str(e).split())
                    said = f": {text[:200]}" if "denied" in text else ""  # a refused login's text is an empty template
                    raise MetadataUnreachable(f"ML Metadata at {self}: the server refused the login (user, password, "
                                              f"or the right to create database '{store.database}'){said}") from None
                time.sleep(0.5 * (attempt + 1))

    def exists(self) -> bool:
        """Whether a run has written it (a database is taken to exist: a missing one fails on open)."""
        return self.database is not None or (self.sqlite is not None and self.sqlite.exists())

    def __str__(self) -> str:
        store = self.database
        if store is not None:
            return f"{store.kind}://{store.user}@{store.host}:{store.port}/{store.database}"
        return str(self.sqlite)


def bind_pipeline_root(root: Path, store: MetadataStoreSpec, default: MetadataStoreSpec) -> None:
    """A pipeline root belongs to one ML Metadata store: TFX names each output folder by its
    execution's id in that store, so another store's ids land in folders already written (Transform
    then fails on "Directory not empty"; other components would mix old files with new). The first
    run records its store in the root; a run with another store is refused (MetadataUriError). A
    root written before the record holds the home's ``default`` store's outputs."""
    marker = root / ROOT_MARKER
    if marker.is_file():
        bound = marker.read_text().strip()
    else:
        bound = default.location if root.is_dir() and any(root.iterdir()) else ""
    if bound and bound != store.location:
        raise MetadataUriError(f"{root}: its outputs are recorded in ML Metadata at {bound}, not {store.location} "
                               f"(a pipeline root belongs to one store: give the --metadata-uri of {bound}, or "
                               "another --home)")
    if not marker.is_file():
        root.mkdir(parents=True, exist_ok=True)
        marker.write_text(store.location + "\n")


def _shown(uri: str) -> str:
    """The URI without its password."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password:
        return uri.replace(f":{parts.password}@", ":***@", 1)
    return repr(uri)
