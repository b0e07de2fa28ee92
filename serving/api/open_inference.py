"""The Open Inference Protocol (KServe V2) over the models TF Serving's API serves: its tensors,
datatypes and documents, shared by the REST routes (``serving.api.tfserving_rest``, ``/v2/...``) and the gRPC
``inference.GRPCInferenceService`` (``serving.api.v2_grpc``).

A version in a V2 path (``/v2/models/NAME/versions/V``, ``model_version``) is a number, or a label
of ``models.config`` (``stable``, ``canary``): labels are the versions' aliases. Inputs are the
serving signature's (default ``serving_default``; another with the request parameter
``signature_name``), named by feature key or by the original column name, as over TF Serving's
API. Binary tensors follow the protocol's binary data extension (REST) and ``raw_input_contents``
/ ``raw_output_contents`` (gRPC); BYTES elements there are 4-byte little-endian lengths, then bytes.
"""
import base64
import binascii
import json
import math
import struct
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from serving.codec.signature import Signature, TensorSpecInfo
from serving.dataplane import DataPlane, ModelSpec
from serving.errors import ServingError, invalid

PLATFORM = "tensorflow_savedmodel"
PACKAGE = "composable-mlops"
SERVER_NAME = "mlops-serving"
EXTENSIONS = ("binary_tensor_data",)
HEADER_LENGTH = "Inference-Header-Content-Length"  # the binary extension's header: JSON bytes before the binary
SIGNATURE_PARAMETER = "signature_name"

# V2 datatype -> numpy dtype (BYTES: numpy objects holding bytes)
NUMPY_TYPES: Dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}
_BY_NUMPY = {np.dtype(t): name for name, t in NUMPY_TYPES.items() if name != "BYTES"}


def datatype_of_array(array: np.ndarray) -> str:
    if array.dtype.kind in ("O", "S", "U"):
        return "BYTES"
    try:
        return _BY_NUMPY[array.dtype]
    except KeyError:
        raise invalid(f"tensor of dtype {array.dtype} has no Open Inference Protocol datatype") from None


def datatype_of(spec: TensorSpecInfo) -> str:
    """The V2 datatype of a signature tensor (TF's dtype name -> BOOL, INT64, FP32, BYTES, ...)."""
    if spec.kind == "string":
        return "BYTES"
    return datatype_of_array(np.empty(0, spec.dtype.as_numpy_dtype))


def tensor_metadata(spec: TensorSpecInfo) -> Dict[str, Any]:
    """name, datatype and shape (-1: any size; an unknown rank is shown as [-1])."""
    shape = [-1 if d is None else d for d in spec.shape] if spec.shape is not None else [-1]
    return {"name": spec.name, "datatype": datatype_of(spec), "shape": shape}


def model_spec(name: str, version: Optional[str], parameters: Optional[Mapping[str, Any]] = None) -> ModelSpec:
    """A V2 (name, version) as the core's ModelSpec: a numeric version, or a label as the version's alias."""
    signature = (parameters or {}).get(SIGNATURE_PARAMETER, "")
    if not isinstance(signature, str):
        raise invalid(f"parameter '{SIGNATURE_PARAMETER}' must be a string")
    if not version:
        return ModelSpec(name, None, None, signature)
    if version.isdigit():
        return ModelSpec(name, int(version), None, signature)
    return ModelSpec(name, None, version, signature)


def model_metadata(name: str, versions: Sequence[str], signature: Signature) -> Dict[str, Any]:
    return {"name": name, "versions": list(versions), "platform": PLATFORM,
            "inputs": [tensor_metadata(s) for _, s in sorted(signature.inputs.items())],
            "outputs": [tensor_metadata(s) for _, s in sorted(signature.outputs.items())]}


def server_metadata() -> Dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version(PACKAGE)
    except PackageNotFoundError:  # run from a source tree that was not installed
        ours = "unknown"
    return {"name": SERVER_NAME, "version": ours, "extensions": list(EXTENSIONS)}


def describe(core: DataPlane, spec: ModelSpec) -> Dict[str, Any]:
    """A model's V2 metadata: its served versions and the signature's tensors."""
    model = core.manager.resolve(spec.name, spec.version, spec.label)
    states = core.manager.models().get(model.name, {}).get("versions", {})
    versions = [v for v, state in states.items() if state == "AVAILABLE"]
    return model_metadata(model.name, versions, model.servable.signature(spec.signature_name))


def is_ready(core: DataPlane, spec: ModelSpec) -> bool:
    """V2 model readiness: the version (or label, or latest) resolves to a loaded model."""
    try:
        core.manager.resolve(spec.name, spec.version, spec.label)
    except ServingError:
        return False
    return True


# --- tensors -------------------------------------------------------------------------------------

def _shape(value: Any, name: str) -> Tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(d, int) and d >= 0 for d in value):
        raise invalid(f"input '{name}': 'shape' must be a list of non-negative integers")
    return tuple(value)


def _datatype(value: Any, name: str) -> str:
    if value not in NUMPY_TYPES:
        raise invalid(f"input '{name}': datatype {value!r} is not one of {', '.join(NUMPY_TYPES)}")
    return value


def decode_bytes(buffer: bytes, name: str = "") -> np.ndarray:
    """BYTES in binary form: each element a 4-byte little-endian length, then its bytes."""
    values, offset = [], 0
    while offset < len(buffer):
        if offset + 4 > len(buffer):
            raise invalid(f"input '{name}': BYTES data ends inside an element's length")
        (size,) = struct.unpack_from("<I", buffer, offset)
        offset += 4
        if offset + size > len(buffer):
            raise invalid(f"input '{name}': BYTES element of {size} bytes runs past the data")
        values.append(bytes(buffer[offset:offset + size]))
        offset += size
    return np.array(values, dtype=object)


def encode_bytes(array: np.ndarray) -> bytes:
    parts = []
    for value in array.reshape(-1):
        data = value if isinstance(value, bytes) else str(value).encode()
        parts.append(struct.pack("<I", len(data)) + data)
    return b"".join(parts)


def array_from_raw(raw: bytes, datatype: str, shape: Tuple[int, ...], name: str) -> np.ndarray:
    count = math.prod(shape)
    if datatype == "BYTES":
        flat = decode_bytes(raw, name)
    else:
        itemsize = np.dtype(NUMPY_TYPES[datatype]).itemsize
        if len(raw) != count * itemsize:
            raise invalid(f"input '{name}': {len(raw)} bytes of {datatype} data for shape {list(shape)} "
                          f"(needs {count * itemsize})")
        flat = np.frombuffer(raw, dtype=np.dtype(NUMPY_TYPES[datatype]).newbyteorder("<"))
    if flat.size != count:
        raise invalid(f"input '{name}': {flat.size} values for shape {list(shape)}")
    return flat.reshape(shape)


def _flatten(data: Any) -> List[Any]:
    if isinstance(data, (list, tuple)):
        return [leaf for item in data for leaf in _flatten(item)]
    return [data]


def _text(value: Any, name: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise invalid(f"input '{name}': 'b64' holds no valid base64") from None
    raise invalid(f"input '{name}': BYTES elements are strings (or {{\"b64\": ...}}), got {json.dumps(value)[:40]}")


def array_from_json(data: Any, datatype: str, shape: Tuple[int, ...], name: str) -> np.ndarray:
    """JSON ``data``, nested in row-major order or flat, as an array of ``shape``."""
    flat = _flatten(data)
    if len(flat) != math.prod(shape):
        raise invalid(f"input '{name}': {len(flat)} values for shape {list(shape)}")
    if datatype == "BYTES":
        return np.array([_text(v, name) for v in flat], dtype=object).reshape(shape)
    kinds = (bool,) if datatype == "BOOL" else (int, float) if datatype.startswith("FP") else (int,)
    bad = [v for v in flat if not isinstance(v, kinds) or (datatype != "BOOL" and isinstance(v, bool))]
    if bad:
        raise invalid(f"input '{name}': {json.dumps(bad[0])} is not a {datatype} value")
    try:
        return np.array(flat, dtype=NUMPY_TYPES[datatype]).reshape(shape)
    except OverflowError:
        raise invalid(f"input '{name}': a value is out of range for {datatype}") from None


def raw_contents(array: np.ndarray) -> bytes:
    """An output in binary form (little-endian; BYTES length-prefixed)."""
    if datatype_of_array(array) == "BYTES":
        return encode_bytes(array)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def json_data(array: np.ndarray) -> List[Any]:
    """An output as flat JSON values (BYTES as text; bytes that are not UTF-8 as {"b64": ...})."""
    if datatype_of_array(array) != "BYTES":
        return array.reshape(-1).tolist()
    out = []
    for value in array.reshape(-1):
        data = value if isinstance(value, bytes) else str(value).encode()
        try:
            out.append(data.decode())
        except UnicodeDecodeError:
            out.append({"b64": base64.b64encode(data).decode()})
    return out


def check_inputs(inputs: Mapping[str, Tuple[str, np.ndarray]], signature: Signature) -> Dict[str, np.ndarray]:
    """Each input's datatype must be the signature's (as the protocol and Triton require); the arrays
    come back as the servable takes them."""
    arrays = {}
    for name, (datatype, array) in inputs.items():
        spec = signature.inputs.get(name)
        if spec is not None and datatype != datatype_of(spec):
            raise invalid(f"input '{name}': datatype {datatype} does not match the model's {datatype_of(spec)}")
        arrays[name] = array
    return arrays


# --- the REST documents ----------------------------------------------------------------------------

def split_body(body: bytes, header_length: Optional[str]) -> Tuple[bytes, bytes]:
    """(JSON, binary tail): with the binary extension, the first ``Inference-Header-Content-Length`` bytes are JSON."""
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise invalid(f"{HEADER_LENGTH} is not a number: {header_length!r}") from None
    if not 0 <= length <= len(body):
        raise invalid(f"{HEADER_LENGTH} {length} is outside the body of {len(body)} bytes")
    return body[:length], body[length:]


def _parameters(entry: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    parameters = entry.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise invalid(f"{where}: 'parameters' must be an object")
    return parameters


def request_inputs(document: Mapping[str, Any], binary: bytes) -> Dict[str, Tuple[str, np.ndarray]]:
    """name -> (datatype, array) of an inference request's ``inputs`` (JSON data or binary parts, in order)."""
    entries = document.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise invalid("'inputs' must be a non-empty list of tensors")
    inputs, offset = {}, 0
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise invalid("each input needs a 'name'")
        name = entry["name"]
        if name in inputs:
            raise invalid(f"input '{name}' is given twice")
        datatype, shape = _datatype(entry.get("datatype"), name), _shape(entry.get("shape"), name)
        size = _parameters(entry, f"input '{name}'").get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise invalid(f"input '{name}': binary_data_size {size!r} runs past the request's binary data")
            inputs[name] = (datatype, array_from_raw(binary[offset:offset + size], datatype, shape, name))
            offset += size
        elif "data" in entry:
            inputs[name] = (datatype, array_from_json(entry["data"], datatype, shape, name))
        else:
            raise invalid(f"input '{name}' has neither 'data' nor parameters.binary_data_size")
    if offset != len(binary):
        raise invalid(f"{len(binary) - offset} bytes of binary data are not claimed by any input")
    return inputs


def requested_outputs(document: Mapping[str, Any]) -> Dict[str, bool]:
    """name -> binary? of the request's ``outputs`` (empty: every output, binary as the request says)."""
    entries = document.get("outputs") or []
    if not isinstance(entries, list):
        raise invalid("'outputs' must be a list")
    default = bool(_parameters(document, "request").get("binary_data_output", False))
    wanted = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise invalid("each requested output needs a 'name'")
        wanted[entry["name"]] = bool(_parameters(entry, f"output '{entry['name']}'").get("binary_data", default))
    return wanted


def response_document(name: str, version: int, outputs: Mapping[str, np.ndarray], binary: Mapping[str, bool],
                      default_binary: bool, request_id: Optional[str]) -> Tuple[Dict[str, Any], bytes]:
    """The inference response, and the binary tail of the outputs sent in binary form."""
    document: Dict[str, Any] = {"model_name": name, "model_version": str(version), "outputs": []}
    if request_id:
        document["id"] = request_id
    tail = []
    for output, array in outputs.items():
        entry = {"name": output, "datatype": datatype_of_array(array), "shape": list(array.shape)}
        if binary.get(output, default_binary):
            raw = raw_contents(array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            tail.append(raw)
        else:
            entry["data"] = json_data(array)
        document["outputs"].append(entry)
    return document, b"".join(tail)
