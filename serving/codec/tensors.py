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
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import orjson
import tensorflow as tf
from google.protobuf import message
from tensorflow.core.framework import tensor_pb2

from serving.codec.examples import feature, varint
from serving.errors import invalid
from serving.runtime.servable import Signature, TensorSpecInfo

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
    dtype, kind = spec.dtype, spec.kind
    if kind == "string":
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
            columns = {names[0]: columns}
        return _named_arrays(columns, signature), "columnar"
    rows = document["instances"]
    if not isinstance(rows, list) or not rows:
        raise invalid("'instances' must be a non-empty list")
    if len(names) == 1 and not (isinstance(rows[0], dict) and _is_named(rows[0], names)):
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

# DataType enum -> (numpy dtype, TensorProto field): the common dtypes read and written without
# tf.make_ndarray / tf.make_tensor_proto, whose per-tensor cost adds up over a request's many
# inputs. Writing (``tensor_bytes``) needs each field's wire tag, and whether its
# values are fixed-width or varints.
_PROTO_FIELDS = {1: (np.float32, "float_val"), 2: (np.float64, "double_val"), 3: (np.int32, "int_val"),
                 9: (np.int64, "int64_val"), 7: (object, "string_val"), 10: (np.bool_, "bool_val")}


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


# --- TensorProto bytes read without protobuf objects ---------------------------------------------
# A PredictRequest's inputs arrive as each TensorProto's bytes (``serving.api.tfserving_grpc``): building a
# TensorProto object and its shape wrapper per input was most of a request's reading. A tensor of a fixed-width
# dtype whose values are its last field (tensor_content, or packed float_val / double_val) is a layout
# (dtype, shape, the values field's tag and length: all the bytes before the values) and then the
# values. A layout is parsed once and kept, so the next tensor laid out the same way is one
# ``startswith`` and one ``np.frombuffer``. Anything else is read by protobuf.

_CONTENT_DTYPES = {dtype.as_datatype_enum: np.dtype(dtype.as_numpy_dtype) for dtype in (  # the fixed-width ones
    tf.float32, tf.float64, tf.float16, tf.int8, tf.int16, tf.int32, tf.int64, tf.uint8, tf.uint16, tf.uint32,
    tf.uint64)}
_PACKED_FIELDS = {0x2A: tf.float32.as_datatype_enum, 0x32: tf.float64.as_datatype_enum}  # float_val, double_val
_TENSOR_CONTENT, _SHAPE, _VERSION, _DTYPE, _DIM, _DIM_SIZE, _DIM_NAME = 0x22, 0x12, 0x18, 0x08, 0x12, 0x08, 0x12
_MAX_LAYOUTS = 256  # dtype x shape x field combinations kept; beyond, the table starts again
_layouts: Dict[int, List[Tuple[bytes, Any, Tuple[int, ...]]]] = {}


def read_varint(data: bytes, i: int) -> Tuple[int, int]:
    """A protobuf varint at ``data[i]``: (value, the index after it)."""
    value = shift = 0
    while shift < 70:
        byte = data[i]  # past the end: IndexError, a malformed message
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return value, i
        shift += 7
    raise ValueError("varint too long")


def _wire_shape(data: bytes) -> Optional[Tuple[int, ...]]:
    """TensorShapeProto bytes -> dims; None for an unknown rank, a negative size or anything unusual."""
    dims, i = [], 0
    while i < len(data):
        tag, i = read_varint(data, i)
        if tag != _DIM:
            return None
        length, i = read_varint(data, i)
        end, size = i + length, 0
        while i < end:
            tag, i = read_varint(data, i)
            if tag == _DIM_SIZE:
                size, i = read_varint(data, i)
            elif tag == _DIM_NAME:
                length, i = read_varint(data, i)
                i += length
            else:
                return None
        if i != end or size >= 1 << 63:  # a negative int64 size
            return None
        dims.append(size)
    return tuple(dims)


def _wire_layout(raw: bytes) -> Optional[Tuple[bytes, Any, Tuple[int, ...]]]:
    """(the bytes before the values, numpy dtype, shape) when ``raw`` is dtype, one shape, optionally a
    version number, and last the values field holding exactly one value per element; else None."""
    dtype_enum, shape, i = 0, None, 0
    while i < len(raw):
        tag, i = read_varint(raw, i)
        if tag == _DTYPE or tag == _VERSION:
            value, i = read_varint(raw, i)
            dtype_enum = value if tag == _DTYPE else dtype_enum
        elif tag == _SHAPE and shape is None:  # a second shape would merge with the first: protobuf's job
            length, i = read_varint(raw, i)
            shape, i = _wire_shape(raw[i:i + length]), i + length
            if shape is None:
                return None
        elif tag == _TENSOR_CONTENT or tag in _PACKED_FIELDS:
            length, i = read_varint(raw, i)
            dtype = _CONTENT_DTYPES.get(dtype_enum)
            if (i + length != len(raw) or dtype is None
                    or (tag != _TENSOR_CONTENT and _PACKED_FIELDS[tag] != dtype_enum)
                    or length != math.prod(shape or ()) * dtype.itemsize):
                return None
            return raw[:i], dtype, shape or ()
        else:
            return None
    return None


def _known_layout(raw: bytes) -> Optional[Tuple[bytes, Any, Tuple[int, ...]]]:
    for layout in _layouts.get(len(raw), ()):
        if raw.startswith(layout[0]):
            return layout
    return None


def fixed_layout(raw: bytes) -> Optional[Tuple[bytes, Any, Tuple[int, ...]]]:
    """(the bytes before the values, numpy dtype, shape) of a TensorProto whose fixed-width values come
    last, learned once per layout; None for any other TensorProto (protobuf reads those)."""
    layout = _known_layout(raw)
    if layout is None:
        try:
            layout = _wire_layout(raw)
        except (IndexError, ValueError):
            return None
        if layout is None:
            return None
        if sum(map(len, _layouts.values())) >= _MAX_LAYOUTS:
            _layouts.clear()
        _layouts.setdefault(len(raw), []).append(layout)
    return layout


def tensor_from_bytes(raw: bytes) -> np.ndarray:
    """A serialized TensorProto -> numpy, as ``proto_to_array`` reads it (the array may be read-only)."""
    layout = fixed_layout(raw)
    if layout is None:
        try:
            return proto_to_array(tensor_pb2.TensorProto.FromString(raw))
        except message.DecodeError as e:
            raise invalid(f"cannot read tensor: {e}") from None
    head, dtype, shape = layout
    return np.frombuffer(raw, dtype, offset=len(head)).reshape(shape)


def tensors_from_bytes(entries: Iterable[Tuple[str, bytes]]) -> Dict[str, np.ndarray]:
    """Serialized TensorProtos by name -> numpy arrays (``tensor_from_bytes`` each); the tensors of one
    known layout (a request's 30 one-value floats) are read together (``arrays_by_layout``).
    Consecutive tensors of one layout (the usual request) cost one ``startswith`` each."""
    arrays: Dict[str, np.ndarray] = {}
    names: List[str] = []
    layouts: List[Tuple[Any, Tuple[int, ...]]] = []
    values: List[bytes] = []
    layout: Any = None
    dtype_shape: Any = None  # layout[1:], made once per layout: arrays_by_layout then compares by identity
    size = -1
    for name, raw in entries:
        if len(raw) != size or not raw.startswith(layout[0]):
            layout, size = _known_layout(raw), len(raw)
            if layout is None:
                arrays[name], size = tensor_from_bytes(raw), -1
                continue
            dtype_shape = layout[1:]
        names.append(name)
        layouts.append(dtype_shape)
        values.append(raw[len(layout[0]):])
    arrays.update(arrays_by_layout(names, layouts, values))
    return arrays


def arrays_by_layout(names: Sequence[str], layouts: Sequence[Tuple[Any, Tuple[int, ...]]],
                     values: Sequence[bytes]) -> Dict[str, np.ndarray]:
    """Arrays by name from their values' bytes and their (dtype, shape): one join and one np.frombuffer
    per layout; the arrays are writable and aligned (a fresh buffer)."""
    if not names:
        return {}
    if layouts.count(layouts[0]) == len(layouts):  # the usual request: every input of one layout
        groups = {layouts[0]: (names, values)}
    else:
        groups = {}
        for name, layout, value in zip(names, layouts, values):
            group = groups.setdefault(layout, ([], []))
            group[0].append(name)
            group[1].append(value)
    arrays: Dict[str, np.ndarray] = {}
    for layout, (group_names, group_values) in groups.items():
        arrays.update(arrays_of_layout(group_names, layout, b"".join(group_values)))
    return arrays


def arrays_of_layout(names: Sequence[str], layout: Tuple[Any, Tuple[int, ...]], values: bytes) -> Dict[str, np.ndarray]:
    """Arrays by name from the joined values of inputs of one (dtype, shape), in ``names``' order: one
    np.frombuffer, each array a row of it (writable and aligned: a fresh buffer)."""
    dtype, shape = layout
    return dict(zip(names, np.frombuffer(bytearray(values), dtype).reshape((len(names),) + shape)))


def delimited(tag: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field of a one-byte tag (field numbers 1-15)."""
    return bytes((tag,)) + varint(len(payload)) + payload


_FIELD_TAGS = {"float_val": (0x2A, True), "double_val": (0x32, True), "int_val": (0x3A, False),
               "int64_val": (0x52, False), "bool_val": (0x5A, False)}
_WRITTEN = {np.dtype(dtype): (enum, *_FIELD_TAGS[field]) for enum, (dtype, field) in _PROTO_FIELDS.items()
            if field in _FIELD_TAGS}  # numpy dtype -> (DataType enum, its field's tag, fixed-width)


@functools.lru_cache(maxsize=1024)
def _tensor_head(dtype: np.dtype, shape: Tuple[int, ...]) -> Tuple[bytes, bool]:
    """(dtype and shape fields, then the values' tag and length when the values are written as they sit
    in memory), and whether that is the case: the same bytes for every array of this dtype and shape."""
    enum, tag, fixed = _WRITTEN[dtype]
    dims = b"".join(delimited(_DIM, bytes((_DIM_SIZE,)) + varint(size) if size else b"")
                    for size in shape)  # a size of 0 is proto3's default: an empty dim
    head, size = bytes((_DTYPE, enum)) + delimited(_SHAPE, dims), math.prod(shape)
    if size > 1 and dtype != np.bool_:
        return head + bytes((_TENSOR_CONTENT,)) + varint(size * dtype.itemsize), True
    if size == 1 and fixed:
        return head + bytes((tag,)) + varint(dtype.itemsize), True
    return head, False


def tensor_bytes(array: np.ndarray) -> bytes:
    """A serialized TensorProto of ``array``, byte for byte what tf.make_tensor_proto(array) serializes to
    (tensor_content for more than one value, else the typed field; bools always bool_val), written
    straight to the wire, without a protobuf TensorProto filled and serialized per output."""
    if array.dtype not in _WRITTEN:  # strings and the rarer dtypes
        return tf.make_tensor_proto(array).SerializeToString()
    head, as_in_memory = _tensor_head(array.dtype, array.shape)
    if as_in_memory:
        return head + array.tobytes()
    if not array.size:
        return head
    tag = _WRITTEN[array.dtype][1]
    return head + delimited(tag, b"".join(map(varint, array.reshape(-1).tolist())))


def fixed_tensor_head(dtype: np.dtype, shape: Tuple[int, ...]) -> Optional[bytes]:
    """The bytes ``tensor_bytes`` writes before the values of an array of this dtype and shape, when it
    writes them as they sit in memory (``head + array.tobytes()``); else None."""
    if dtype not in _WRITTEN:
        return None
    head, as_in_memory = _tensor_head(dtype, shape)
    return head if as_in_memory else None


def cast_inputs(inputs: Mapping[str, np.ndarray], signature: Signature,
                dtype: Optional[np.dtype] = None) -> Dict[str, np.ndarray]:
    """gRPC tensors arrive typed: a dtype other than the signature's is INVALID_ARGUMENT, as in TF Serving.
    ``dtype``: every input's dtype, when the caller knows they share one (no look at each)."""
    uniform = signature.uniform_dtype
    if uniform is not None and (dtype == uniform if dtype is not None and inputs
                                else {array.dtype for array in inputs.values()} == {uniform}):
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
