"""TF Serving's REST API (port 8501) over the data plane: model status, metadata, predict (row and
columnar formats), classify and regress, with TF Serving's paths, JSON bodies, error bodies
(``{"error": "..."}``) and status codes. Transport-free: ``serving.api.rest_app`` carries it."""
import json
import re
from typing import Any, Dict, NamedTuple, Optional, Tuple
from urllib.parse import unquote

from google.protobuf import json_format

from serving.codec import tensors
from serving.codec.model_extras import SIGNATURE_DEF
from serving.dataplane import DataPlane, ModelSpec, status_list
from serving.errors import ServingError, invalid
from serving.runtime.servable import check_rows

MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<method>[A-Za-z]+))?$", re.IGNORECASE)
METRICS_PATH = "/monitoring/prometheus/metrics"
HEALTH_PATH = "/healthz"
JSON = "application/json"
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus' text format


class Answer(NamedTuple):
    """An HTTP answer: status, body, its content type, more header fields."""
    status: int
    body: bytes
    content_type: str = JSON
    headers: Tuple[Tuple[str, str], ...] = ()


def json_answer(status: int, document: Any) -> Answer:
    return Answer(status, tensors.dumps(document))


def error_answer(error: ServingError) -> Answer:
    return json_answer(error.http_status, {"error": error.message})


def _spec(match: "re.Match", signature_name: str = "") -> ModelSpec:
    version = match.group("version")
    if version is not None and not version.isdigit():
        raise invalid(f"Failed to convert version: {version} to numeric.")
    return ModelSpec(unquote(match.group("name")), int(version) if version else None,
                     unquote(match.group("label")) if match.group("label") else None, signature_name)


def _signature_name(document: Dict[str, Any]) -> str:
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid(f"JSON Value: {json.dumps(name)} not formatted correctly. 'signature_name' key must be a "
                      "string value.")
    return name


def _metadata(plane: DataPlane, spec: ModelSpec) -> Answer:
    model, signature_defs = plane.metadata(spec)
    metadata: Dict[str, Any] = {SIGNATURE_DEF: {"signature_def": {
        key: json_format.MessageToDict(sig, preserving_proto_field_name=True) for key, sig in signature_defs.items()}}}
    metadata.update(model.servable.extras())  # ours, beside TF Serving's: columns, image, series
    return json_answer(200, {"model_spec": {"name": model.name, "signature_name": "", "version": str(model.version)},
                             "metadata": metadata})


def get(plane: DataPlane, path: str) -> Answer:
    """GET: metrics, health, a model's status or metadata."""
    if path == METRICS_PATH:
        return Answer(200, plane.render_metrics().encode(), METRICS_CONTENT_TYPE)
    if path == HEALTH_PATH:
        ready, body = plane.health()
        return json_answer(200 if ready else 503, body)
    match = MODEL_PATH.match(path)
    if match is None or match.group("method"):
        raise invalid(f"Malformed request: GET {path}")
    spec = _spec(match)
    if match.group("metadata"):
        return _metadata(plane, spec)
    statuses = plane.manager.status(spec.name, spec.version, spec.label)
    return json_answer(200, {"model_version_status": status_list(statuses)})


def post(plane: DataPlane, path: str, body: bytes, client_key: Optional[str]) -> Answer:
    """POST: predict, classify, regress."""
    match = MODEL_PATH.match(path)
    method = (match.group("method") or "").lower() if match else ""
    if match is None or method not in ("predict", "classify", "regress"):
        raise invalid(f"Malformed request: POST {path}")
    document = tensors.parse_json(body)
    spec = _spec(match, _signature_name(document))
    if method == "predict":
        row_format = "instances" in document

        def inputs_for(signature, columns):
            check_rows([(tensors.request_rows(document),)], plane.options.max_request_rows)  # before any tensor
            return tensors.request_inputs(columns.rename_document(document), signature)[0]
        _, _, outputs = plane.predict(spec, inputs_for, client_key=client_key)
        return json_answer(200, tensors.response_json(outputs, row_format))
    if method == "classify":
        _, _, results = plane.classify(spec, tensors.json_examples(document), client_key=client_key)
        return json_answer(200, {"results": [[[label, score] for label, score in row] for row in results]})
    _, _, values = plane.regress(spec, tensors.json_examples(document), client_key=client_key)
    return json_answer(200, {"results": values})
