"""The MLflow model registry side of the project: each blessed, pushed model is a version of the
registered model ``<pipeline name>``; the aliases ``challenger`` / ``champion`` / ``canary`` say what
each version is for; the promotion history is kept as registered-model tags (MLflow keeps no
history of aliases, mlflow/mlflow#2169). No TensorFlow or TFX here.

Only an explicit ``MlflowClient`` is used: MLflow's fluent API keeps a process-wide active run and
sets ``$MLFLOW_TRACKING_URI``, which would send the next pipeline's run (another home) there.
"""
import contextlib
import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

from core.home import SQLITE_PREFIX

CHALLENGER, CHAMPION, CANARY = "challenger", "champion", "canary"
HISTORY_TAG_PREFIX = "promotion."  # promotion.0001, promotion.0002, ... one event each (JSON)
MODEL_ARTIFACT_PATH = "model"  # the pyfunc model (the SavedModel inside) in a run's artifacts

# Model-version tags that promotion reads: where the model is served and how to evaluate it.
SERVING_VERSION_TAG = "serving_version"
SERVING_PATH_TAG = "serving_path"
EVAL_EXAMPLES_TAG = "eval_examples"
TARGETS_TAG = "targets"  # JSON [[label, task], ...]
TASK_TAG = "task"
GATES_TAG = "gates"  # JSON {label: bound}: the pipeline's own blessing bounds
SLICES_TAG = "slice_features"  # JSON [feature, ...]
PIPELINE_RUN_TAG = "pipeline_run_id"


class RegistryError(Exception):
    """A one-line problem with the tracking server or the registry."""


class UnknownModelError(RegistryError):
    """The caller named a model, version or alias the registry does not have: bad input."""


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fails fast with a clear message when an HTTP tracking server does not answer (MLflow's own
    client would retry for minutes), or does not know this caller (``check_access``): one request."""
    problem = check_access(uri, timeout_s)
    if problem is not None:
        raise RegistryError(f"MLflow tracking server {uri} {problem}")


ACCESS_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"  # any caller that may read may ask


class AccessError(RegistryError):
    """The tracking server does not know the caller, or refuses them an operation (MLflow's
    basic-auth app): one line naming the server, the user and what to set."""


def _caller() -> str:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    return f"user '{user}'" if user else "a caller without credentials"


def _refusal(uri: str, status: int, what: str = "") -> str:
    server = f"MLflow tracking server {uri}" if uri else "The MLflow tracking server"
    if status == 401:
        return (f"{server} does not accept {_caller()}: set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD to an account of its basic-auth app")
    return f"{server} refuses {_caller()} {what or 'this operation'} (permission denied)"


def _auth_headers() -> Dict[str, str]:
    """What MLflow's client sends from its own variables (MLFLOW_TRACKING_USERNAME / _PASSWORD, or
    MLFLOW_TRACKING_TOKEN)."""
    import base64

    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return {"Authorization": f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"}
    return {}


def check_access(uri: str, timeout_s: float = 5.0) -> Optional[str]:
    """An HTTP tracking server that asks who calls (MLflow's basic-auth app) knows this caller, by
    MLflow's own variables (_auth_headers): AccessError if not. Returns what else kept it from
    answering (None: it answered, or the store is local), for the caller to decide whether that stops it."""
    if not uri.startswith(("http://", "https://")):
        return None
    request = urllib.request.Request(f"{uri.rstrip('/')}{ACCESS_PATH}", headers=_auth_headers())
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return None
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            raise AccessError(_refusal(uri, e.code, "reading experiments")) from None
        return f"answered {ACCESS_PATH} with HTTP {e.code}"
    except (urllib.error.URLError, OSError) as e:
        return f"is unreachable ({getattr(e, 'reason', e)})"


EDITING_PERMISSIONS = ("EDIT", "MANAGE")  # MLflow's permissions that may move aliases and write tags
# The basic-auth app's own question "what may this user do to this resource" (any user, on itself)
USER_PERMISSION_PATH = "/api/3.0/mlflow/users/permissions/get"


def check_may_edit(uri: str, name: str, action: str, timeout_s: float = 5.0) -> None:
    """Before ``action`` evaluates or changes anything: the caller holds EDIT or MANAGE on the
    registered model ``name`` (else AccessError, one line). Asked of the basic-auth app itself, a
    read: a server without it (404), a local store or a caller without a user name is not checked
    here (its writes still say)."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if not uri.startswith(("http://", "https://")) or not user:
        return
    query = urllib.parse.urlencode({"username": user, "resource_type": "registered_model", "resource_id": name})
    request = urllib.request.Request(f"{uri.rstrip('/')}{USER_PERMISSION_PATH}?{query}", headers=_auth_headers())
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            permission = json.load(response).get("permission", "")
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            raise AccessError(_refusal(uri, e.code, f"asking its permissions on '{name}'")) from None
        return  # 404: no auth app; another answer: the writes will say
    except (urllib.error.URLError, OSError, ValueError):
        return
    if permission not in EDITING_PERMISSIONS:
        raise AccessError(f"MLflow tracking server {uri} refuses user '{user}' {action} of registered model '{name}' "
                          f"(permission denied: it holds {permission or 'none'}, and EDIT or MANAGE is needed, which "
                          "an admin grants); nothing changed")


@contextlib.contextmanager
def access_errors(uri: str = "") -> Iterator[None]:
    """MLflow's refusals of the caller (HTTP 401 or 403 from the server) as one-line AccessErrors."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as e:
        found = re.search(r"error code (401|403) != 200", str(e))
        status = int(found.group(1)) if found else {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}.get(
            str(getattr(e, "error_code", "")), 0)
        if not status:
            raise
        endpoint = re.search(r"endpoint (\S+)", str(e))
        raise AccessError(_refusal(uri, status, f"at {endpoint.group(1)}" if endpoint else "")) from None


def client_for(uri: str):
    from mlflow.tracking import MlflowClient

    check_reachable(uri)
    seed_sqlite_store(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def seed_sqlite_store(uri: str) -> None:
    """A new SQLite store (a new home's ``mlflow.db``) starts as a copy of an empty one: MLflow
    otherwise builds each new store by running all its schema migrations, 1.7 s here on every new
    home's first run. The empty store is made once per MLflow version, in the user's cache, by
    MLflow's own migrations, without the Default experiment (whose artifact root MLflow sets when it
    first opens each copy). A store that exists is never touched; where no copy can be made (no
    writable cache, no hard links), MLflow builds the store as it always does."""
    if not uri.startswith(SQLITE_PREFIX):
        return
    target = Path(uri[len(SQLITE_PREFIX):])
    if target.exists() or not target.parent.is_dir():
        return
    template = _empty_store_template()
    if template is None:
        return
    scratch = target.with_name(f".{target.name}.{os.getpid()}.seed")
    try:
        shutil.copyfile(template, scratch)
        os.link(scratch, target)  # only if still absent: a store another process made meanwhile stays
    except OSError:  # FileExistsError among them
        pass
    finally:
        with contextlib.suppress(OSError):
            scratch.unlink()


def _empty_store_template() -> Optional[Path]:
    import mlflow

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "composable-mlops"
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    if template.exists():
        return template
    try:
        import sqlalchemy
        from mlflow.store.db.utils import _initialize_tables
    except ImportError:  # another MLflow layout
        return None
    scratch = cache / f".{template.name}.{os.getpid()}.tmp"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        engine = sqlalchemy.create_engine(f"{SQLITE_PREFIX}{scratch}")
        try:
            _initialize_tables(engine)  # MLflow's tables at its head revision, and nothing else
        finally:
            engine.dispose()
        os.replace(scratch, template)  # whole or absent: two first runs each make one, one wins
    except (OSError, sqlalchemy.exc.SQLAlchemyError):
        return None
    finally:
        with contextlib.suppress(OSError):  # gone once replaced; never made where the cache cannot be
            scratch.unlink()
    return template


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _registered(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def aliases(client, name: str) -> Dict[str, int]:
    """alias -> model version; raises when ``name`` was never registered."""
    model = _registered(client, name)
    if model is None:
        raise UnknownModelError(f"no registered model '{name}' in {client.tracking_uri} "
                            "(a blessed, pushed pipeline run registers it; one run with --no-tracking does not)")
    return {alias: int(version) for alias, version in model.aliases.items()}


def version_for_serving_path(client, name: str, serving_path: str):
    """The registered version of a pushed model dir, or None."""
    if _registered(client, name) is None:
        return None
    for version in client.search_model_versions(f"name='{name}'"):
        if version.tags.get(SERVING_PATH_TAG) == serving_path:
            return version
    return None


def register_pushed(client, name: str, source: str, run_id: str, tags: Mapping[str, str]):
    """A new version of ``name`` with the alias ``challenger`` (idempotent per pushed dir)."""
    from mlflow.exceptions import MlflowException

    existing = version_for_serving_path(client, name, tags[SERVING_PATH_TAG])
    if existing is not None:
        return existing
    try:
        client.create_registered_model(name, description=f"Models pushed by the '{name}' pipeline.")
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(name, source=source, run_id=run_id, tags=dict(tags))
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return client.get_model_version(name, version.version)


def history(client, name: str) -> List[dict]:
    """The promotion history, oldest first."""
    model = _registered(client, name)
    if model is None:
        return []
    keys = sorted(k for k in model.tags if k.startswith(HISTORY_TAG_PREFIX))
    return [json.loads(model.tags[k]) for k in keys]


def append_history(client, name: str, event: dict) -> dict:
    """Records ``event`` as the next ``promotion.NNNN`` tag; returns it with its sequence number."""
    sequence = len(history(client, name)) + 1
    event = {"seq": sequence, **event}
    client.set_registered_model_tag(name, f"{HISTORY_TAG_PREFIX}{sequence:04d}", json.dumps(event, sort_keys=True))
    return event


def get_version(client, name: str, version: int):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise UnknownModelError(f"registered model '{name}' has no version {version}") from None
        raise


def set_alias(client, name: str, alias: str, version: Optional[int]) -> None:
    """Points ``alias`` at ``version``; None removes it."""
    if version is None:
        if alias in client.get_registered_model(name).aliases:
            client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, str(version))


def resolve_model_uri(uri: str, tracking_uri: str) -> Tuple[str, int, str]:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` -> (name, version, the pushed SavedModel dir)."""
    import re

    from mlflow.exceptions import MlflowException

    match = re.fullmatch(r"models:/([^/@]+)(?:@([\w-]+)|/(\d+))", uri)
    if not match:
        raise UnknownModelError(f"{uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    name, alias, number = match.groups()
    client = client_for(tracking_uri)
    try:
        version = client.get_model_version_by_alias(name, alias) if alias else get_version(client, name, int(number))
    except MlflowException:
        what = "registered model alias" if alias else "registered model"
        raise UnknownModelError(f"{uri}: no such {what} in {tracking_uri}") from None
    path = version.tags.get(SERVING_PATH_TAG, "")
    if not path:
        raise RegistryError(f"{uri}: version {version.version} has no {SERVING_PATH_TAG} tag (not pushed by mlops)")
    return name, int(version.version), path
