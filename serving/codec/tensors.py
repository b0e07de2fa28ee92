"""Conversions at the API edge, following TF Serving's rules.

REST (JSON): row (``instances``) and columnar (``inputs``) formats, ``{"b64": ...}`` for binary
strings, outputs named ``*_bytes`` returned base64-encoded, NaN/Infinity allowed; classify/regress
``examples`` as JSON objects that become tf.Examples (ints -> int64_list, other numbers ->
float_list, strings -> bytes_list). gRPC: TensorProto <-> numpy.
"""
import base64
import binascii
import functools
import json
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import orjson
import tensorflow as tf

from serving.codec.examples import feature
from serving.codec.signature import Signature, TensorSpecInfo
from serving.errors import invalid

B64 = "b64"
BYTES_SUFFIX = "_bytes"


def parse_json(body: bytes) -> Dict[str, Any]:
    """orjson first (several times faster on a row of numbers); what it refuses (NaN and Infinity, which TF Serving
    accepts; integers beyond 64 bits; bad input) goes to the standard parser, whose answer stands."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise invalid(f"JSON Parse error: {e}") from None
        except RecursionError:  # nested deeper than either parser goes (orjson: 1,024 levels)
            raise invalid("JSON Parse error: arrays or objects nested too deeply") from None
    if not isinstance(document, dict):
        raise invalid("JSON Parse error: the request body must be a JSON object")
    return document


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _json_type(value: Any) -> str:
    return {dict: "Object", list: "Array", str: "String", bool: "True" if value else "False",
            type(None): "Null"}.get(type(value), "Number")


@functools.lru_cache(maxsize=None)
def _int_range(dtype: Any) -> Tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _leaf(value: Any, spec: TensorSpecInfo) -> Any:
    """Beyond TF Serving's rules, which refuse them: null is a missing value ("" for a string, NaN
    for a float: the served graph reads both as missing), and true/false for a string is the text a
    yes/no column reads."""
    dtype, kind = spec.dtype, spec.kind
    if value is None and kind in _MISSING:
        return _MISSING[kind]
    if kind == "string":
        if isinstance(value, bool):
            return b"true" if value else b"false"
        if isinstance(value, str):
            try:
                return value.encode()
            except UnicodeEncodeError:  # a lone surrogate escape ("\ud800"), which the JSON parser lets through
                raise invalid(f"JSON Value: {_short(value)} is not valid Unicode (input '{spec.name}')") from None
        if isinstance(value, dict) and set(value) == {B64} and isinstance(value[B64], str):
            try:
                return base64.b64decode(value[B64], validate=True)
            except (binascii.Error, ValueError):
                raise invalid(f"JSON Value: {_short(value)} Unable to base64 decode") from None
        raise invalid(f"JSON Value: {_short(value)} Type: {_json_type(value)} is not of expected type: "
                      f"{dtype.name} (input '{spec.name}')")
    if kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            low, high = _int_range(spec.numpy_dtype)
            if low <= value <= high:  # numpy would wrap it round, with only a warning
                return value
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    else:
        raise invalid(f"input '{spec.name}': dtype {dtype.name} is not supported over JSON")
    raise invalid(f"JSON Value: {_short(value)} Type: {_json_type(value)} is not of expected type: {dtype.name} "
                  f"(input '{spec.name}')")


_MISSING = {"string": b"", "float": float("nan")}


def _convert(value: Any, spec: TensorSpecInfo) -> Any:
    if isinstance(value, list):
        return [_convert(v, spec) for v in value]
    return _leaf(value, spec)


def to_array(values: Any, spec: TensorSpecInfo) -> np.ndarray:
    """A JSON value (scalar or nested lists) -> an array of the signature's dtype; ragged lists and
    wrong types are INVALID_ARGUMENT naming the input."""
    converted = _convert(values, spec)
    try:
        array = np.array(converted, dtype=spec.numpy_dtype)
    except ValueError:
        raise invalid(f"input '{spec.name}': lists of unequal sizes (every row needs the same shape)") from None
    except OverflowError as e:
        raise invalid(f"input '{spec.name}': {e}") from None
    if spec.kind == "string":
        if any(isinstance(v, list) for v in array.reshape(-1)):
            raise invalid(f"input '{spec.name}': lists of unequal sizes")
    elif array.dtype == object:
        raise invalid(f"input '{spec.name}': lists of unequal sizes")
    if spec.kind == "float" and np.isinf(array).any():
        # infinities are allowed, overflow of a finite JSON number is not
        finite_json = np.isfinite(np.array(_flatten(values), dtype=np.float64))
        if np.any(finite_json & ~np.isfinite(array.reshape(-1))):
            raise invalid(f"input '{spec.name}': Cannot convert JSON value to {spec.dtype.name} without loss "
                          "of precision")
    return array


def _flatten(values: Any) -> List[Any]:
    if isinstance(values, list):
        return [x for v in values for x in _flatten(v)]
    return [values]


def request_rows(document: Mapping[str, Any]) -> int:
    """The rows of a parsed predict request, counted before any tensor is built (so the row limit
    refuses a request of a million rows without converting them): its instances, or the longest of
    its columnar inputs."""
    rows = document.get("instances")
    if isinstance(rows, list):
        return len(rows)
    columns = document.get("inputs")
    values = columns.values() if isinstance(columns, dict) else [columns]
    return max((len(value) for value in values if isinstance(value, list)), default=1)


def request_inputs(document: Mapping[str, Any], signature: Signature) -> Tuple[Dict[str, np.ndarray], str]:
    """The inputs of a predict request and its format ("row" or "columnar")."""
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances == has_inputs:
        raise invalid("Missing 'inputs' or 'instances' key" if not has_instances else
                      "Not formatted correctly expecting only one of 'inputs' or 'instances' keys exists")
    names = signature.input_names
    if has_inputs:
        columns = document["inputs"]
        if not isinstance(columns, dict) or (len(names) == 1 and not _is_named(columns, names)):
            if len(names) != 1:
                raise invalid(f"'inputs' must be an object keyed by the signature's inputs: {', '.join(names)}")
            _refuse_misnamed(columns, names, "'inputs'")
            columns = {names[0]: columns}
        return _named_arrays(columns, signature), "columnar"
    rows = document["instances"]
    if not isinstance(rows, list) or not rows:
        raise invalid("'instances' must be a non-empty list")
    if len(names) == 1 and not (isinstance(rows[0], dict) and _is_named(rows[0], names)):
        _refuse_misnamed(rows[0], names, "instances[0]")
        return {names[0]: to_array(rows, signature.inputs[names[0]])}, "row"
    fast = _scalar_rows(rows, signature)
    if fast is not None:
        return fast, "row"
    columns: Dict[str, List[Any]] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise invalid(f"instances[{i}]: expected an object with keys {', '.join(names)} (the model has "
                          f"{len(names)} inputs)")
        if i and set(row) != set(columns):
            raise invalid(f"instances[{i}]: keys differ from instances[0] (every instance needs the same named "
                          "inputs)")
        for name, value in row.items():
            columns.setdefault(name, []).append(value)
    return _named_arrays(columns, signature), "row"


_NUMBER_TYPES = {"float": frozenset({int, float}), "int": frozenset({int})}  # exact types: a bool is not a number
_SCALAR_TYPES = {**_NUMBER_TYPES, "string": frozenset({str})}


def _scalar_rows(rows: List[Any], signature: Signature) -> Optional[Dict[str, np.ndarray]]:
    """The row format's common case, each instance an object of one plain value per input: each
    dtype's values converted and checked at once, not one value at a time. None on anything
    else, or anything wrong, which the general path converts or names."""
    groups = signature.scalar_inputs
    if groups is None or any(type(row) is not dict or len(row) != len(signature.inputs) for row in rows):
        return None
    arrays: Dict[str, np.ndarray] = {}
    try:
        for (kind, dtype), names in groups.items():
            values = [row[name] for name in names for row in rows]  # input-major: each input's rows contiguous
            if not set(map(type, values)) <= _SCALAR_TYPES.get(kind, frozenset()):
                return None
            if kind == "string":
                array = np.array([value.encode() for value in values], dtype=object)
            else:
                array = _numbers_at_once(values, dtype)
                if array is None:
                    return None
            arrays.update(zip(names, array.reshape(len(names), len(rows))))
    except (KeyError, UnicodeEncodeError):  # a missing input; a lone surrogate
        return None
    return arrays


def _numbers_at_once(values: List[Any], dtype: Any) -> Optional[np.ndarray]:
    """Plain JSON numbers (a flat list, or lists of one length) as one array of ``dtype``, checked at
    once. None when a value would not survive as given: an integer out of the dtype's range or beyond
    64 bits (numpy would wrap it), a float that overflows (or an explicit Infinity: the general path
    tells them apart and names the value), lists of different lengths."""
    integer = np.dtype(dtype).kind in "iu"
    try:
        array = np.array(values, dtype=np.int64 if integer else dtype)  # int64 first: out of range stays visible
    except (ValueError, OverflowError):
        return None
    if not array.size:
        return array.astype(dtype, copy=False)
    if integer:
        low, high = _int_range(dtype)
        return array.astype(dtype, copy=False) if low <= array.min() and array.max() <= high else None
    return None if np.count_nonzero(np.isinf(array)) else array  # not .any(): its Python wrapper costs more


def _is_named(value: Mapping[str, Any], names: Sequence[str]) -> bool:
    return isinstance(value, dict) and bool(value) and set(value) <= set(names) and not (set(value) == {B64})


def _refuse_misnamed(value: Any, names: Sequence[str], where: str) -> None:
    """A one-input model's request given as an object that does not name its input (an empty one, or
    one with other keys): said as such, not as a value of the wrong type. {"b64": ...} is a value."""
    if not isinstance(value, dict) or set(value) == {B64}:
        return
    unknown = sorted(set(value) - set(names))
    what = f"does not have named input: {unknown[0]}" if unknown else "an empty object"
    raise invalid(f"{where}: JSON object: {what} (the model's one input is {names[0]})")


def _named_arrays(columns: Mapping[str, Any], signature: Signature) -> Dict[str, np.ndarray]:
    for name in columns:
        if name not in signature.inputs:
            raise invalid(f"JSON object: does not have named input: {name} (the inputs are "
                          f"{', '.join(sorted(signature.inputs))})")
    stacked = _stacked_numbers(columns, signature)
    return {name: stacked[name] if name in stacked else to_array(values, signature.inputs[name])
            for name, values in columns.items()}


def _stacked_numbers(columns: Mapping[str, Any], signature: Signature) -> Dict[str, np.ndarray]:
    """Flat lists of plain numbers, converted together per dtype: one numpy call and one overflow
    check for all such inputs of a request, not one each. Anything
    else, or anything this finds wrong, is left to ``to_array`` (and its error messages)."""
    groups: Dict[Any, List[str]] = {}
    for name, values in columns.items():
        spec = signature.inputs[name]
        types = _NUMBER_TYPES.get(spec.kind)
        if types and isinstance(values, list) and values and all(type(v) in types for v in values):
            groups.setdefault(spec.numpy_dtype, []).append(name)
    stacked: Dict[str, np.ndarray] = {}
    for dtype, names in groups.items():
        matrix = _numbers_at_once([columns[name] for name in names], dtype)
        if matrix is not None:
            stacked.update(zip(names, matrix))  # each row a contiguous view of its input
    return stacked


def _json_value(array: np.ndarray, name: str) -> Any:
    if array.dtype == object or array.dtype.kind == "S":
        def text(value: bytes) -> Any:
            if name.endswith(BYTES_SUFFIX):
                return {B64: base64.b64encode(value).decode()}
            try:
                return value.decode()
            except UnicodeDecodeError:
                return {B64: base64.b64encode(value).decode()}
        return np.vectorize(text, otypes=[object])(array).tolist() if array.size else array.tolist()
    return array.tolist()


def response_json(outputs: Mapping[str, np.ndarray], row_format: bool) -> Dict[str, Any]:
    if not row_format:
        if len(outputs) == 1:
            ((name, value),) = outputs.items()
            return {"outputs": _json_value(value, name)}
        return {"outputs": {name: _json_value(value, name) for name, value in outputs.items()}}
    if len(outputs) == 1:
        ((name, value),) = outputs.items()
        return {"predictions": _json_value(value, name)}
    sizes = {value.shape[0] if value.ndim else None for value in outputs.values()}
    if len(sizes) != 1 or None in sizes:
        raise invalid("Output tensors must have equal 0th-dimension size for the row ('instances') format; "
                      "use the columnar ('inputs') format")
    columns = {name: _json_value(value, name) for name, value in outputs.items()}
    return {"predictions": [{name: columns[name][i] for name in outputs} for i in range(sizes.pop())]}


def dumps(document: Any) -> bytes:
    """Compact JSON. orjson first (far faster on a small answer); an answer it would write
    differently goes to the standard encoder, whose text stands: NaN and Infinity (TF Serving writes
    them as such, orjson as null), and what orjson refuses (integers beyond 64 bits)."""
    try:
        text = orjson.dumps(document)
        if b"null" not in text:  # a NaN or Infinity became null (or a None was null already: same text)
            return text
    except orjson.JSONEncodeError:
        pass
    return json.dumps(document, separators=(",", ":")).encode()


# --- tf.Example from JSON (classify / regress) -------------------------------------------------

def _feature(name: str, value: Any) -> tf.train.Feature:
    values = value if isinstance(value, list) else [value]
    if not values:
        return tf.train.Feature()
    if all(isinstance(v, bool) for v in values) or any(isinstance(v, (dict, list)) and not _is_b64(v)
                                                        for v in values):
        raise invalid(f"feature '{name}': {_short(value)} is not a number, a string or a list of them")
    if all(isinstance(v, (int, float)) for v in values):
        return feature(values)
    if all(isinstance(v, str) or _is_b64(v) for v in values):
        return feature([base64.b64decode(v[B64]) if isinstance(v, dict) else v for v in values])
    raise invalid(f"feature '{name}': {_short(value)} mixes numbers and strings")


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {B64} and isinstance(value[B64], str)


def json_examples(document: Mapping[str, Any]) -> List[bytes]:
    """``examples`` (+ optional ``context`` merged into each) -> serialized tf.Examples."""
    examples = document.get("examples")
    if not isinstance(examples, list) or not examples:
        raise invalid("Missing or empty 'examples' key: expected a list of objects")
    context = document.get("context") or {}
    if not isinstance(context, dict):
        raise invalid("'context' must be an object")
    serialized = []
    for i, example in enumerate(examples):
        if not isinstance(example, dict):
            raise invalid(f"examples[{i}] is not an object")
        merged = {**context, **example}
        serialized.append(tf.train.Example(features=tf.train.Features(
            feature={name: _feature(name, value) for name, value in merged.items()})).SerializeToString())
    return serialized


# --- gRPC: TensorProto <-> numpy ---------------------------------------------------------------

# DataType enum -> (numpy dtype, TensorProto field): the common dtypes read from a parsed TensorProto
# without tf.make_ndarray, whose per-tensor cost adds up over a request's many inputs.
_PROTO_FIELDS = {1: (np.float32, "float_val"), 2: (np.float64, "double_val"), 3: (np.int32, "int_val"),
                 9: (np.int64, "int64_val"), 7: (object, "string_val"), 10: (np.bool_, "bool_val")}


# fixed-width DataType enums -> numpy dtypes: their values travel as tensor_content
_CONTENT_DTYPES = {dtype.as_datatype_enum: np.dtype(dtype.as_numpy_dtype) for dtype in (
    tf.float32, tf.float64, tf.float16, tf.int8, tf.int16, tf.int32, tf.int64, tf.uint8, tf.uint16, tf.uint32,
    tf.uint64, tf.bool)}


def proto_to_array(proto: Any) -> np.ndarray:
    entry = _PROTO_FIELDS.get(proto.dtype)
    shape = [d.size for d in proto.tensor_shape.dim]
    if entry is not None and all(size >= 0 for size in shape):
        dtype, field = entry
        count = math.prod(shape)
        if proto.tensor_content and dtype is not object:
            flat = np.frombuffer(proto.tensor_content, dtype=dtype)
        else:
            values = getattr(proto, field)
            if len(values) == count:  # numpy reads a list faster than the protobuf container
                flat = np.array(list(values), dtype=dtype)
            elif len(values) == 0:  # all default values
                flat = np.full(count, b"" if dtype is object else 0, dtype=dtype)
            elif len(values) < count:  # TensorProto semantics: the last value repeats
                flat = np.array(list(values) + [values[-1]] * (count - len(values)), dtype=dtype)
            else:
                raise invalid(f"tensor has {len(values)} values for shape {shape}")
        if flat.size != count:
            raise invalid(f"tensor content has {flat.size} values for shape {shape}")
        return flat.reshape(shape)
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as e:
        raise invalid(f"cannot read tensor: {e}") from None


def fill_tensor_proto(proto: Any, array: np.ndarray) -> None:
    """``array`` into a TensorProto (a response's output), as tf.make_tensor_proto lays it out: a
    fixed-width array's bytes in tensor_content, strings in string_val; others through TensorFlow."""
    dtype = _DTYPE_ENUMS.get(array.dtype)
    if dtype is None:
        proto.CopyFrom(tf.make_tensor_proto(array))
        return
    proto.dtype = dtype
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if array.dtype == object:
        proto.string_val.extend(value if isinstance(value, bytes) else str(value).encode()
                                for value in array.reshape(-1))
    else:
        proto.tensor_content = np.ascontiguousarray(array).tobytes()


_DTYPE_ENUMS = {**{np.dtype(dtype): enum for enum, dtype in _CONTENT_DTYPES.items()}, np.dtype(object): 7}


def cast_inputs(inputs: Mapping[str, np.ndarray], signature: Signature) -> Dict[str, np.ndarray]:
    """gRPC tensors arrive typed: a dtype other than the signature's is INVALID_ARGUMENT, as in TF Serving."""
    uniform = signature.uniform_dtype
    if uniform is not None and {array.dtype for array in inputs.values()} == {uniform}:
        return dict(inputs)  # the usual request: every input of the one dtype the signature takes
    cast = dict(inputs)
    expected = signature.input_dtypes
    for name, array in inputs.items():
        dtype = expected.get(name, array.dtype)
        if array.dtype != dtype:
            if array.dtype.kind == "S" and dtype.kind == "O":
                cast[name] = array.astype(object)
                continue
            raise invalid(f"Expects arg[{name}] to be {signature.inputs[name].dtype.name} but "
                          f"{tf.dtypes.as_dtype(array.dtype).name} is provided")
    return cast


def examples_from_input(request_input: Any) -> List[bytes]:
    """tensorflow.serving.Input (example_list or example_list_with_context) -> serialized examples."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in request_input.example_list.examples]
    if kind == "example_list_with_context":
        with_context = request_input.example_list_with_context
        merged = []
        for example in with_context.examples:
            combined = tf.train.Example()
            combined.CopyFrom(with_context.context)
            combined.MergeFrom(example)
            merged.append(combined.SerializeToString())
        return merged
    raise invalid("Input is empty: give example_list or example_list_with_context")
