"""`mlops predict`: send rows from a JSON or CSV file to a running server, over REST (standard
library only) or gRPC (the official stubs), and print one line per row.

A CSV is read with the model's own signature (its metadata, over the API the command uses): its string inputs stay
text, the others are numbers, an empty cell is a missing value (NaN or ""), and columns the model
does not take (e.g. the label) are left out. A JSON file is a TF Serving request body, or a list of
row objects.
"""
import base64
import json
import math
import ssl
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

from serving.codec.columns import (
    NO_COLUMNS,
    PARQUET_SUFFIXES,
    TABLE_SUFFIXES,
    ColumnNames,
    csv_dict_reader,
    is_missing_text,
    parse,
)
from serving.codec.model_extras import EXTRA_FIELDS, SIGNATURE_DEF
from serving.options import TlsFiles

STRING_DTYPE = "DT_STRING"


class ClientError(Exception):
    """A one-line problem with the request or reaching the server (the server said no, or is not there)."""


class RequestFileError(ClientError):
    """A one-line problem with the user's own file (missing, not JSON, a column or cell the model
    cannot take, here or at the server: HTTP 400, gRPC INVALID_ARGUMENT): bad input, not a refusal."""


@dataclass(frozen=True)
class Target:
    host: str
    model: str
    version: Optional[int] = None
    label: Optional[str] = None
    signature: str = ""
    tls: Optional[TlsFiles] = None  # HTTPS / gRPC over TLS: ``ca`` verifies the server; cert+key: mutual TLS

    def url(self, port: int, suffix: str = "") -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{port}{self.rest_path(suffix)}"

    def ssl_context(self):
        return self.tls.client_context() if self.tls else None

    def grpc_channel(self, port: int):
        import grpc

        if self.tls is None:
            return grpc.insecure_channel(f"{self.host}:{port}")
        ca, key, cert = (Path(p).read_bytes() if p else None for p in (self.tls.ca, self.tls.key, self.tls.cert))
        return grpc.secure_channel(f"{self.host}:{port}", grpc.ssl_channel_credentials(ca, key, cert))

    def rest_path(self, suffix: str = "") -> str:
        path = f"/v1/models/{self.model}"
        if self.version is not None:
            path += f"/versions/{self.version}"
        elif self.label:
            path += f"/labels/{self.label}"
        return path + suffix


def _http(url: str, body: Optional[bytes] = None, timeout: float = 30.0, context=None) -> Dict[str, Any]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("error", "")
        except ValueError:
            message = ""
        error = RequestFileError if e.code == 400 else ClientError  # 400: the server read the request and refused it
        raise error(f"{url}: HTTP {e.code}: {message or e.reason}") from None
    except (urllib.error.URLError, ssl.SSLError, ConnectionError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise ClientError(f"{url}: the server's certificate is not trusted ({reason.verify_message}); --ssl-ca "
                              "names the CA that signed it") from None
        # TLS 1.3: the server checks the client's certificate after the handshake, then closes
        refused_after_handshake = url.startswith("https:") and isinstance(e, ConnectionError)
        if refused_after_handshake:
            reason = "it closed the connection after the handshake, without an answer"
        if refused_after_handshake or isinstance(e, ssl.SSLError) or isinstance(reason, ssl.SSLError):
            raise ClientError(f"{url}: the server refused the TLS connection ({reason}); a server with a client "
                              "CA needs --ssl-cert and --ssl-key") from None
        raise ClientError(f"cannot reach {url} ({reason}); is `mlops serve` running?") from None


def model_metadata(target: Target, rest_port: int, grpc_port: Optional[int] = None) -> Dict[str, Any]:
    """The served model's metadata in REST's /metadata shape ({"signature_def": {"signature_def": ...},
    and the fields of EXTRA_FIELDS the model has}): over REST, or over gRPC's GetModelMetadata when
    ``grpc_port`` is given (a server reached over gRPC alone)."""
    if grpc_port is None:
        return _http(target.url(rest_port, "/metadata"), context=target.ssl_context())["metadata"]
    return _grpc_metadata(target, grpc_port)


def _grpc_metadata(target: Target, port: int, timeout: float = 30.0) -> Dict[str, Any]:
    """GetModelMetadata for every field; TF Serving's own server, which knows signature_def alone and
    refuses the others as INVALID_ARGUMENT, is asked again for that one."""
    import grpc
    from google.protobuf import json_format, wrappers_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    _fill_model_spec(request.model_spec, target)
    request.metadata_field.extend((SIGNATURE_DEF, *EXTRA_FIELDS))
    with target.grpc_channel(port) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            try:
                response = stub.GetModelMetadata(request, timeout=timeout)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                del request.metadata_field[1:]
                response = stub.GetModelMetadata(request, timeout=timeout)
        except grpc.RpcError as e:
            raise ClientError(f"gRPC {target.host}:{port}: {e.code().name}: {e.details()}") from None
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[SIGNATURE_DEF].Unpack(signature_map)
    metadata: Dict[str, Any] = {SIGNATURE_DEF: json_format.MessageToDict(signature_map,
                                                                         preserving_proto_field_name=True)}
    for field in EXTRA_FIELDS:
        if field in response.metadata:
            document = wrappers_pb2.StringValue()
            response.metadata[field].Unpack(document)
            metadata[field] = json.loads(document.value)
    return metadata


def model_inputs(metadata: Dict[str, Any], target: Target) -> Tuple[Dict[str, Dict[str, Any]], ColumnNames]:
    """The signature's inputs and the model's column names (original -> key), from ``model_metadata``."""
    signatures = metadata[SIGNATURE_DEF].get("signature_def", {})
    key = target.signature or "serving_default"
    if key not in signatures:
        raise ClientError(f"model {target.model} has no signature {key!r}; it has {', '.join(sorted(signatures))}")
    return signatures[key].get("inputs", {}), parse(metadata.get("columns"))


def _cell(text: str, dtype: str, path: Path, line: int, column: str, why_not: str) -> Any:
    """A CSV cell as its input's dtype; ``why_not``: why its column refuses it, '' when it reads
    (``ColumnNames.refusal``: a date or yes/no cell the model's column cannot read)."""
    if why_not:
        raise RequestFileError(f"{path}:{line}: column '{column}': {text!r} {why_not}")
    if dtype == STRING_DTYPE:
        return "" if is_missing_text(text) else text
    if is_missing_text(text):
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise RequestFileError(f"{path}:{line}: column '{column}': {text!r} is not a number") from None


def rows_from_csv(path: Path, inputs: Dict[str, Dict[str, Any]],
                  columns: ColumnNames = NO_COLUMNS) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Instances for the signature (keyed by its inputs), and the CSV columns left out. The header may
    hold the original column names of the model's table, any delimiter among , ; tab |."""
    with csv_dict_reader(path) as reader:
        header = reader.fieldnames or []
        key_of = {name: columns.key(name.strip()) for name in header}
        column_of = {key: name for name, key in key_of.items()}
        _refuse_missing_columns(path, inputs, columns, set(column_of))
        rows = []
        for line, row in enumerate(reader, start=2):
            texts = {key: row[column_of[key]] or "" for key in inputs}
            rows.append({key: _cell(text, inputs[key].get("dtype", ""), path, line, column_of[key],
                                    columns.refusal(key, text)) for key, text in texts.items()})
    if not rows:
        raise RequestFileError(f"{path}: no rows")
    return rows, sorted(name for name, key in key_of.items() if key not in inputs)


def _refuse_missing_columns(where: str, inputs: Dict[str, Dict[str, Any]], columns: ColumnNames,
                           given: set) -> None:
    """``given``: the keys a row has; the inputs it lacks named by their original columns."""
    missing = sorted(set(inputs) - given)
    if missing:
        raise RequestFileError(f"{where}: missing column(s) the model needs: "
                               f"{', '.join(columns.name_of(key) for key in missing)}")


def is_table_file(path: Path) -> bool:
    """A delimited table (read by its header), not a JSON request body."""
    return path.suffix.lower() in TABLE_SUFFIXES


def request_from_file(path: Path, inputs_of) -> Tuple[Dict[str, Any], List[str]]:
    """The TF Serving request body for a .json or .csv file; ``inputs_of()`` fetches the signature's
    inputs and the model's column names (``model_inputs``)."""
    if not path.exists():
        raise RequestFileError(f"{path}: no such file")
    if is_table_file(path):
        rows, dropped = rows_from_csv(path, *inputs_of())
        return {"instances": rows}, dropped
    if path.suffix.lower() in PARQUET_SUFFIXES:
        raise RequestFileError(f"{path}: give rows as a delimited table (.csv, .tsv) or JSON; `mlops score` scores "
                               "a Parquet file")
    try:
        document = json.loads(path.read_text())
    except ValueError as e:
        raise RequestFileError(f"{path}: not JSON ({e})") from None
    if isinstance(document, list):
        document = {"instances": document}
    if not isinstance(document, dict) or not ({"instances", "inputs"} & set(document)):
        raise RequestFileError(f"{path}: expected a TF Serving request (with 'instances' or 'inputs') or a list of "
                               "rows")
    rows = document.get("instances")
    if isinstance(rows, list) and rows and all(isinstance(row, dict) for row in rows):
        inputs, columns = inputs_of()
        if len(inputs) > 1:  # a one-input model's row may be its bare value (or {"b64": ...})
            for i, row in enumerate(rows):
                _refuse_missing_columns(f"{path}: row {i + 1}", inputs, columns, {columns.key(k) for k in row})
    return document, []


def image_request(paths: Sequence[Path]) -> Dict[str, Any]:
    """TF Serving's REST convention for binary inputs: one ``{"b64": ...}`` per file (the encoded
    bytes as they are; the model decodes and resizes)."""
    for path in paths:
        if not path.is_file():
            raise RequestFileError(f"{path}: no such file")
    return {"instances": [{"b64": base64.b64encode(path.read_bytes()).decode()} for path in paths]}


def series_info(metadata: Dict[str, Any]):
    """A forecaster's series info from ``model_metadata``, or None for any other model."""
    from serving.codec.periods import SeriesInfo

    document = metadata.get("series")
    return SeriesInfo.parse(document) if document else None


def print_image_predictions(paths: Sequence[Path], response: Dict[str, Any], class_names: Sequence[str] = (),
                            out: Optional[TextIO] = None) -> None:
    """One line per file: the top class (by name when the model gives names) and its score."""
    out = out or sys.stdout
    predictions = response.get("predictions", [])
    for path, row in zip(paths, predictions):
        scores = row.get("predictions", row) if isinstance(row, dict) else row
        scores = scores if isinstance(scores, list) else [scores]
        if len(scores) == 1:  # a sigmoid: the second class's probability
            score = float(scores[0])
            index, score = (1, score) if score >= 0.5 else (0, 1 - score)
        else:
            index = max(range(len(scores)), key=lambda i: scores[i])
            score = float(scores[index])
        name = class_names[index] if index < len(class_names) else str(index)
        print(f"{path}\t{name}\t{score:.4f}", file=out)


def predict_rest(host: str, port: int, target: Target, body: Dict[str, Any]) -> Dict[str, Any]:
    if target.signature:
        body = {**body, "signature_name": target.signature}
    return _http(target.url(port, ":predict"), json.dumps(body).encode(), context=target.ssl_context())


def _fill_model_spec(spec: Any, target: Target) -> None:
    """A gRPC request's ModelSpec: the model, and its version or label when the target names one."""
    spec.name = target.model
    if target.version is not None:
        spec.version.value = target.version
    elif target.label:
        spec.version_label = target.label


def _grpc_array(name: str, values: Any, inputs: Dict[str, Dict[str, Any]]):
    """A JSON input's values as the array gRPC sends, by the rules the server applies to REST's JSON
    (serving.codec.tensors: null a missing value, {"b64": ...} bytes, each type checked); a value
    the input cannot take is the user's bad input, named as REST's answer names it."""
    from google.protobuf import json_format
    from tensorflow.core.protobuf import meta_graph_pb2

    from serving.codec.signature import tensor_spec
    from serving.codec.tensors import to_array
    from serving.errors import ServingError

    if name not in inputs:
        raise RequestFileError(f"the model has no input {name!r}; its inputs: {', '.join(sorted(inputs))}")
    info = json_format.ParseDict(inputs[name], meta_graph_pb2.TensorInfo(), ignore_unknown_fields=True)
    if not info.WhichOneof("encoding"):  # a dtype (and shape) alone, as a caller may give it: a plain tensor
        info.name = name
    spec = tensor_spec(name, info)
    try:
        return to_array(values, spec)
    except ServingError as e:
        raise RequestFileError(e.message) from None


def predict_grpc(host: str, port: int, target: Target, body: Dict[str, Any],
                 inputs: Dict[str, Dict[str, Any]], names: ColumnNames = NO_COLUMNS,
                 timeout: float = 30.0) -> Dict[str, Any]:
    """The same request through PredictionService.Predict; the answer in the REST response's shape.
    Columns may carry the model's original column names (``names``)."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    _fill_model_spec(request.model_spec, target)
    request.model_spec.signature_name = target.signature or body.get("signature_name", "")
    if "instances" in body:
        rows = body["instances"]
        named = isinstance(rows[0], dict) and set(rows[0]) != {"b64"}  # {"b64": ...} is one binary value
        columns = {name: [row[name] for row in rows] for name in rows[0]} if named else None
        if columns is None:
            (only,) = inputs
            columns = {only: rows}
    else:
        columns = body["inputs"] if isinstance(body["inputs"], dict) else {next(iter(inputs)): body["inputs"]}
    for name, values in names.rename(columns).items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(_grpc_array(name, values, inputs)))
    with target.grpc_channel(port) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as e:
            error = RequestFileError if e.code() == grpc.StatusCode.INVALID_ARGUMENT else ClientError
            raise error(f"gRPC {host}:{port}: {e.code().name}: {e.details()}") from None
    outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
    version = response.model_spec.version.value
    if len(outputs) == 1:
        return {"predictions": next(iter(outputs.values())).tolist(), "version": version}
    size = len(next(iter(outputs.values())))
    return {"predictions": [{k: v[i].tolist() for k, v in outputs.items()} for i in range(size)], "version": version}


def print_predictions(response: Dict[str, Any], out: Optional[TextIO] = None) -> None:
    """One ``index<TAB>json`` line per row. ``out`` is looked up at call time (a default bound at
    import would keep whatever stream was sys.stdout then)."""
    out = out or sys.stdout
    predictions = response.get("predictions", response.get("outputs"))
    if isinstance(predictions, list):
        for i, row in enumerate(predictions):
            print(f"{i}\t{json.dumps(row)}", file=out)
    else:
        print(json.dumps(predictions), file=out)
