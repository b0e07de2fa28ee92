"""The Open Inference Protocol's (KServe V2) REST routes under ``/v2`` over the data plane: server and
model metadata, liveness and readiness, infer (JSON and the binary data extension).
Transport-free: ``serving.api.rest_app`` carries it."""
import re
from typing import Optional
from urllib.parse import unquote

from serving.api import open_inference
from serving.api.tfserving_rest import Answer, json_answer
from serving.codec import tensors
from serving.dataplane import DataPlane
from serving.errors import not_found

V2_MODEL_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<action>/ready|/infer)?$")
V2_PATHS = {"/v2": "server", "/v2/health/live": "live", "/v2/health/ready": "ready"}


def get(plane: DataPlane, path: str) -> Answer:
    what = V2_PATHS.get(path.rstrip("/"))
    if what == "server":
        return json_answer(200, open_inference.server_metadata())
    if what == "live":
        return json_answer(200, {"live": True})
    if what == "ready":
        ready = plane.manager.ready()
        return json_answer(200 if ready else 503, {"ready": ready})
    match = V2_MODEL_PATH.match(path)
    if match is None or match.group("action") == "/infer":
        raise not_found(f"Malformed request: GET {path}")
    spec = open_inference.model_spec(unquote(match.group("name")), unquote(match.group("version") or ""))
    if match.group("action") == "/ready":
        ready = open_inference.is_ready(plane, spec)
        return json_answer(200 if ready else 400, {"name": spec.name, "ready": ready})
    return json_answer(200, open_inference.describe(plane, spec))


def infer(plane: DataPlane, path: str, body: bytes, header_length: Optional[str], client_key: Optional[str]) -> Answer:
    match = V2_MODEL_PATH.match(path)
    if match is None or match.group("action") != "/infer":
        raise not_found(f"Malformed request: POST {path}")
    header, binary = open_inference.split_body(body, header_length)
    document = tensors.parse_json(header)
    inputs = open_inference.request_inputs(document, binary)
    wanted = open_inference.requested_outputs(document)
    spec = open_inference.model_spec(unquote(match.group("name")), unquote(match.group("version") or ""),
                                     document.get("parameters"))
    model, _, outputs = plane.predict(
        spec, lambda signature, columns: open_inference.check_inputs(columns.rename(inputs), signature),
        list(wanted), entrypoint="V2_REST", client_key=client_key)
    default_binary = bool((document.get("parameters") or {}).get("binary_data_output", False))
    response, tail = open_inference.response_document(model.name, model.version, outputs, wanted,
                                                      default_binary, document.get("id"))
    payload = tensors.dumps(response)
    if not tail:
        return Answer(200, payload)
    return Answer(200, payload + tail, "application/octet-stream",
                  ((open_inference.HEADER_LENGTH, str(len(payload))),))
