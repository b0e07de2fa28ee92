"""Where ML Metadata lives: the home's SQLite file (one machine), or a MySQL / MariaDB database a
team shares (``--metadata-uri mysql://USER:PASSWORD@HOST:PORT/DATABASE`` or $MLOPS_METADATA_URI).
ML Metadata 1.16 also has a PostgreSQL source, but TFX's input resolution fails on it (a query
PostgreSQL reads as a syntax error: a second run's Trainer found no examples), so it is refused.
One value for the pipeline (TFX's connection config) and for everything that reads lineage back
(run reports, schemas, skew)."""
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

METADATA_ENV = "MLOPS_METADATA_URI"
DEFAULT_PORTS = {"mysql": 3306}  # the database servers TFX 1.16's pipelines run on through ML Metadata


class MetadataUriError(ValueError):
    """A --metadata-uri that does not name a store (one line)."""


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

    def exists(self) -> bool:
        """Whether a run has written it (a database is taken to exist: a missing one fails on open)."""
        return self.database is not None or (self.sqlite is not None and self.sqlite.exists())

    def __str__(self) -> str:
        store = self.database
        if store is not None:
            return f"{store.kind}://{store.user}@{store.host}:{store.port}/{store.database}"
        return str(self.sqlite)


def _shown(uri: str) -> str:
    """The URI without its password."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password:
        return uri.replace(f":{parts.password}@", ":***@", 1)
    return repr(uri)
