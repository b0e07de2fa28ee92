"""TF Serving's gRPC API (port 8500): PredictionService (Predict, Classify, Regress, GetModelMetadata)
and ModelService (GetModelStatus), grpcio servicers served by ``serving.grpc_http2``, with the official
generated messages, except Predict's: it reads a request by splitting it, or walking its input entries,
against entry heads learned from earlier requests (``PredictReader``), or else as a LeanPredictRequest (each input's
TensorProto left as bytes), and writes its answer's bytes itself; the Open Inference Protocol's
GRPCInferenceService beside them (``serving.api.v2_grpc``)."""
import functools
import operator
from types import SimpleNamespace
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import grpc
import numpy as np
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf import message as message_module
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.api import v2_grpc as open_inference_grpc
from serving.codec import tensors
from serving.dataplane import DataPlane, ModelSpec
from serving.errors import ServingError, invalid
from serving.grpc_http2 import Http2GrpcServer
from serving.runtime.traffic import metadata_client_key

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"


def _lean_predict_request() -> type:
    """PredictRequest as the server parses it when ``PredictReader``'s walk cannot read it: the same
    fields and numbers, but each tensor's TensorProto as bytes (``tensors.tensors_from_bytes`` reads
    them) and the tensor map as the repeated key/value entries a map is on the wire (a map's Python
    iteration costs far more per entry than a repeated field's). Request fields the server does not
    use (predict_streamed_options, client_id) are kept as unknown fields."""
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="mlops/serving/lean_predict.proto", package="mlops.serving",
                                              syntax="proto3", dependency=[model_pb2.DESCRIPTOR.name])
    message = file.message_type.add(name="LeanPredictRequest")
    entry = message.nested_type.add(name="TensorEntry")
    entry.field.add(name="key", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=field.TYPE_BYTES, label=field.LABEL_OPTIONAL)
    message.field.add(name="model_spec", number=1, type=field.TYPE_MESSAGE, label=field.LABEL_OPTIONAL,
                      type_name=".tensorflow.serving.ModelSpec")
    message.field.add(name="inputs", number=2, type=field.TYPE_MESSAGE, label=field.LABEL_REPEATED,
                      type_name=".mlops.serving.LeanPredictRequest.TensorEntry")
    message.field.add(name="output_filter", number=3, type=field.TYPE_STRING, label=field.LABEL_REPEATED)
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(file.name)
    except KeyError:
        pool.AddSerializedFile(file.SerializeToString())
    return message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName(
        "mlops.serving.LeanPredictRequest"))


LeanPredictRequest = _lean_predict_request()
# PredictRequest's fields (all length-delimited) and a map entry's, as one-byte wire tags
_SPEC_TAG, _INPUT_TAG, _FILTER_TAG = 0x0A, 0x12, 0x1A
_KEY_TAG, _VALUE_TAG = 0x0A, 0x12


def lean_inputs(request: Any) -> Dict[str, np.ndarray]:
    """A LeanPredictRequest's inputs as arrays; an input named twice is the last one, as in a map."""
    return tensors.tensors_from_bytes({entry.key: entry.value for entry in request.inputs}.items())


class ReadPredict(NamedTuple):
    """A Predict request read by ``PredictReader``'s walk: what the servicer needs of it."""
    spec: ModelSpec
    inputs: Dict[str, np.ndarray]
    output_filter: Tuple[str, ...]
    dtype: Optional[np.dtype] = None  # every input's dtype, when the reader knows they share one


class _Tail(NamedTuple):
    """What ``PredictReader._split`` knows of entries that share one tail: their values' layout and
    size, getters of a piece's key part and values, and the names of the key parts learned with it."""
    layout: Tuple[Any, Tuple[int, ...]]
    size: int
    key_of: Any
    value_of: Any
    names: Dict[bytes, str]


class PredictReader:
    """Predict's request deserializer. On the wire each input is an entry of its key, then its
    TensorProto; when the values are fixed-width and last (``tensors.fixed_layout``), the entry's bytes
    before them name the input and its layout. Learned once, they let a request be read in any entry
    order (Python's and Go's protobuf write a map in a new order every time) with one np.frombuffer per
    layout: split at the bytes its entries share when all inputs have one layout (``_split``, C-level
    steps), else walked, one dict lookup an entry (bench/results/serving.md has what each costs). A
    request with anything
    else (strings, an input named twice, a field the server does not read, no model spec) is parsed: a
    LeanPredictRequest."""

    MAX_KNOWN = 4096  # entry heads remembered; beyond, the table starts again

    def __init__(self) -> None:
        self._known: Dict[bytes, Tuple[str, Tuple[Any, Tuple[int, ...]], int]] = {}  # head -> name, layout, size
        self._sizes: List[int] = []  # the value sizes of the known heads (one, usually)
        self._layouts: Dict[Tuple[Any, Tuple[int, ...]], Tuple[Any, Tuple[int, ...]]] = {}
        self._specs: Dict[bytes, ModelSpec] = {}
        self._tails: Dict[bytes, _Tail] = {}  # an entry's bytes between its key and its values -> its names
        self._key_tails: Dict[bytes, bytes] = {}  # an entry's key part -> the tail last learned with it

    def __call__(self, message: bytes) -> Any:
        read = self._split(message)
        if read is None:
            read = self._walk(message)
        return read if read is not None else LeanPredictRequest.FromString(message)  # malformed: INTERNAL

    def _learn(self, entry: bytes) -> Optional[Tuple[str, Tuple[Any, Tuple[int, ...]], int]]:
        """Learns an input entry's head (tag and length included) when its layout is fixed: (its name,
        (dtype, shape), the values' size)."""
        try:
            _, i = tensors.read_varint(entry, 1)
            if entry[i] != _KEY_TAG:
                return None
            size, i = tensors.read_varint(entry, i + 1)
            name, i = entry[i:i + size].decode(), i + size
            if entry[i] != _VALUE_TAG:
                return None
            key_end = i
            size, i = tensors.read_varint(entry, i + 1)
        except (IndexError, ValueError):  # UnicodeDecodeError is a ValueError
            return None
        layout = tensors.fixed_layout(entry[i:]) if i + size == len(entry) else None
        if layout is None:
            return None
        head, dtype, shape = layout
        value_size = len(entry) - i - len(head)
        if len(self._known) >= self.MAX_KNOWN:
            self._known, self._sizes, self._layouts, self._tails, self._key_tails = {}, [], {}, {}, {}
        # one object per layout, so arrays_by_layout's "all one layout?" test compares by identity
        layout = self._layouts.setdefault((dtype, shape), (dtype, shape))
        known = self._known[entry[:len(entry) - value_size]] = (name, layout, value_size)
        if value_size not in self._sizes:
            self._sizes.append(value_size)
        tail = entry[key_end:len(entry) - value_size]
        if tail not in self._tails:
            self._tails[tail] = _Tail(layout, value_size, operator.itemgetter(slice(value_size, None)),
                                      operator.itemgetter(slice(0, value_size)), {})
        self._tails[tail].names[entry[:key_end]] = name
        self._key_tails[entry[:key_end]] = tail
        return known

    def _entry(self, entry: bytes) -> Optional[Tuple[str, Tuple[Any, Tuple[int, ...]], int]]:
        """An input entry's (name, layout, value size): by its head for any known value size, else learned."""
        for size in self._sizes:
            hit = self._known.get(entry[:len(entry) - size])
            if hit is not None:
                return hit
        return self._learn(entry)

    def _split(self, message: bytes) -> Optional[ReadPredict]:
        """The usual request, read with C-level steps where the walk takes a Python step per entry: a model spec,
        then inputs that all share one learned tail (their value tag, length and TensorProto head, e.g.
        every input a float32 of shape [1]), nothing after. Split at that tail, the message is its spec,
        then each entry's key part (tag, entry length, key), then for each input its values and the next
        key part. Split is lossless, so when every key part is one learned with this tail and every value
        is the tail's size, the entries are exactly those the walk would find. None otherwise (the walk
        reads it, or learns what is new)."""
        if len(message) < 2 or message[0] != _SPEC_TAG or message[1] >= 0x80:
            return None
        start = 2 + message[1]
        try:  # the first input's key part names the tail to split at (one tail tried, whatever the server knows)
            i = start + 2 if message[start + 1] < 0x80 else tensors.read_varint(message, start + 1)[1]
            if message[start] != _INPUT_TAG or message[i] != _KEY_TAG:
                return None
            size, i = (message[i + 1], i + 2) if message[i + 1] < 0x80 else tensors.read_varint(message, i + 1)
        except (IndexError, ValueError):
            return None
        tail = self._key_tails.get(message[start:i + size])
        if tail is None or not message.startswith(tail, i + size):
            return None
        known = self._tails[tail]
        pieces = message[start:].split(tail)
        if len(pieces[-1]) != known.size:
            return None  # something after the last input (an output filter): the walk reads it
        keys = list(map(known.key_of, pieces))
        keys[0] = pieces[0]
        keys.pop()
        names = list(map(known.names.get, keys))
        if None in names or len(set(names)) != len(names):
            return None
        spec = self._specs.get(message[2:start])
        if spec is None:
            return None
        return ReadPredict(spec, tensors.arrays_of_layout(
            names, known.layout, b"".join(map(known.value_of, pieces[1:]))), (), known.layout[0])

    def _walk(self, message: bytes) -> Optional[ReadPredict]:
        names: List[str] = []
        layouts: List[Tuple[Any, Tuple[int, ...]]] = []
        values: List[bytes] = []
        filters, spec_raw = [], None
        known, sizes, i, n = self._known, self._sizes, 0, len(message)
        usual = sizes[0] if len(sizes) == 1 else -1  # one value size (the usual case): one lookup an entry
        get, add_name, add_layout, add_value = known.get, names.append, layouts.append, values.append
        try:
            while i < n:
                tag, length = message[i], message[i + 1]
                j = i + 2
                if length >= 0x80:
                    length, j = tensors.read_varint(message, i + 1)
                end = j + length
                if end > n:
                    return None
                if tag == _INPUT_TAG:
                    hit = get(message[i:end - usual]) if usual >= 0 else None
                    if hit is None:
                        hit = self._entry(message[i:end])
                        if hit is None:
                            return None
                    add_name(hit[0])
                    add_layout(hit[1])
                    add_value(message[end - hit[2]:end])
                elif tag == _SPEC_TAG and spec_raw is None:
                    spec_raw = message[j:end]
                elif tag == _FILTER_TAG:
                    filters.append(message[j:end].decode())
                else:
                    return None
                i = end
        except (IndexError, ValueError):
            return None
        if len(set(names)) != len(names):
            return None
        spec = self._specs.get(spec_raw) if spec_raw is not None else None
        if spec is None:
            if spec_raw is None:
                return None
            try:
                spec = _spec(model_pb2.ModelSpec.FromString(spec_raw))
            except (ServingError, message_module.DecodeError):
                return None
            if len(self._specs) >= self.MAX_KNOWN:
                self._specs.clear()
            self._specs[spec_raw] = spec
        return ReadPredict(spec, tensors.arrays_by_layout(names, layouts, values), tuple(filters))


@functools.lru_cache(maxsize=256)
def _spec_bytes(name: str, version: int, signature_name: Optional[str]) -> bytes:
    spec = model_pb2.ModelSpec()
    _fill_spec(spec, SimpleNamespace(name=name, version=version), signature_name)
    return spec.SerializeToString()


def _output_entry(name: str, tensor: bytes) -> bytes:
    return tensors.delimited(_KEY_TAG, tensors.delimited(_KEY_TAG, name.encode())
                             + tensors.delimited(_VALUE_TAG, tensor))


@functools.lru_cache(maxsize=1024)
def _output_head(name: str, dtype: np.dtype, shape: Tuple[int, ...]) -> Optional[bytes]:
    """An output entry's bytes before its values, when they are its array's bytes as they sit in memory."""
    if tensors.fixed_tensor_head(dtype, shape) is None:
        return None
    zeros = np.zeros(shape, dtype)
    return _output_entry(name, tensors.tensor_bytes(zeros))[:-zeros.nbytes]


def predict_response(model: Any, signature_name: Optional[str], outputs: Dict[str, np.ndarray]) -> bytes:
    """A serialized PredictResponse of a model's outputs, written straight to the wire (outputs, field 1,
    then model_spec, field 2, as protobuf orders them); each tensor as ``tensors.tensor_bytes`` writes
    it, an output of a known dtype and shape as its cached head and its array's bytes."""
    parts = []
    for name, value in outputs.items():
        head = _output_head(name, value.dtype, value.shape)
        parts += (head, value.tobytes()) if head is not None else (_output_entry(name, tensors.tensor_bytes(value)),)
    parts.append(tensors.delimited(_VALUE_TAG, _spec_bytes(model.name, model.version, signature_name)))
    return b"".join(parts)


STATE_CODES = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}
ERROR_CODES = {"OK": 0, "UNKNOWN": 2, "NOT_FOUND": 5}


def _spec(model_spec: Any) -> ModelSpec:
    which = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if which == "version" else None
    label = model_spec.version_label if which == "version_label" else None
    if not model_spec.name:
        raise invalid("Missing ModelSpec")
    return ModelSpec(model_spec.name, version, label, model_spec.signature_name)


def _abort(context: grpc.ServicerContext, error: ServingError) -> None:
    context.abort(getattr(grpc.StatusCode, error.code), error.message)


def _fill_spec(target: Any, model: Any, signature_name: Optional[str]) -> None:
    target.name = model.name
    target.version.value = model.version
    if signature_name is not None:
        target.signature_name = signature_name


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core: DataPlane):
        self.core = core

    def Predict(self, request: Any, context: grpc.ServicerContext):
        """``request`` is what ``PredictReader`` gives (a ReadPredict, or a LeanPredictRequest whose
        inputs are TensorProto bytes); the answer a serialized PredictResponse."""
        try:
            if isinstance(request, ReadPredict):
                spec, raw, output_filter, dtype = request
            else:
                spec, raw, output_filter, dtype = (_spec(request.model_spec), lean_inputs(request),
                                                   request.output_filter, None)
            model, key, outputs = self.core.predict(
                spec, lambda signature, columns: tensors.cast_inputs(columns.rename(raw), signature, dtype),
                list(output_filter), entrypoint="GRPC",
                client_key=metadata_client_key(context.invocation_metadata()))
        except ServingError as e:
            return _abort(context, e)
        return predict_response(model, key, outputs)

    def Classify(self, request: classification_pb2.ClassificationRequest, context: grpc.ServicerContext):
        try:
            examples = tensors.examples_from_input(request.input)
            model, key, results = self.core.classify(_spec(request.model_spec), examples, entrypoint="GRPC",
                                                     client_key=metadata_client_key(context.invocation_metadata()))
        except ServingError as e:
            return _abort(context, e)
        response = classification_pb2.ClassificationResponse()
        _fill_spec(response.model_spec, model, key)
        for row in results:
            classifications = response.result.classifications.add()
            for label, score in row:
                classifications.classes.add(label=label, score=score)
        return response

    def Regress(self, request: regression_pb2.RegressionRequest, context: grpc.ServicerContext):
        try:
            examples = tensors.examples_from_input(request.input)
            model, key, values = self.core.regress(_spec(request.model_spec), examples, entrypoint="GRPC",
                                                   client_key=metadata_client_key(context.invocation_metadata()))
        except ServingError as e:
            return _abort(context, e)
        response = regression_pb2.RegressionResponse()
        _fill_spec(response.model_spec, model, key)
        for value in values:
            response.result.regressions.add(value=value)
        return response

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest,
                         context: grpc.ServicerContext):
        try:
            if list(request.metadata_field) != ["signature_def"]:
                raise invalid("Metadata field must be exactly ['signature_def'] (the only one supported), got "
                              f"{list(request.metadata_field)}")
            model, signature_defs = self.core.metadata(_spec(request.model_spec))
        except ServingError as e:
            return _abort(context, e)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        packed = any_pb2.Any()
        packed.Pack(signature_map)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _fill_spec(response.model_spec, model, None)
        response.metadata["signature_def"].CopyFrom(packed)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: DataPlane):
        self.core = core

    def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext):
        try:
            spec = _spec(request.model_spec)
            statuses = self.core.manager.status(spec.name, spec.version, spec.label)
        except ServingError as e:
            return _abort(context, e)
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in statuses:
            entry = response.model_version_status.add(version=status.version, state=STATE_CODES[status.state])
            entry.status.error_code = ERROR_CODES.get(status.error_code, 2)
            entry.status.error_message = status.error_message
        return response

    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "edit models.config instead: both servers reload it on their own")


def _prediction_handlers(service: PredictionService) -> grpc.GenericRpcHandler:
    """PredictionService as its generated registration has it, but Predict reads through a
    ``PredictReader`` and answers bytes it wrote itself."""
    def unary(method, request_type) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(method, request_deserializer=request_type.FromString,
                                                   response_serializer=lambda response: response.SerializeToString())
    return grpc.method_handlers_generic_handler(PREDICTION_SERVICE, {
        "Predict": grpc.unary_unary_rpc_method_handler(service.Predict, request_deserializer=PredictReader()),
        "Classify": unary(service.Classify, classification_pb2.ClassificationRequest),
        "Regress": unary(service.Regress, regression_pb2.RegressionRequest),
        "GetModelMetadata": unary(service.GetModelMetadata, get_model_metadata_pb2.GetModelMetadataRequest),
    })


def make_grpc_server(core: DataPlane, host: str, port: int, max_workers: int = 16) -> Http2GrpcServer:
    """The gRPC port's server (``serving.grpc_http2``: a thread per connection, grpcio's servicers)."""
    options = core.options
    server = Http2GrpcServer(host, port, max_workers=max_workers, max_concurrent_rpcs=options.max_concurrent_rpcs,
                             max_receive=options.max_request_bytes, max_connections=options.max_connections,
                             idle_timeout=options.idle_timeout_s,
                             tls=options.tls.server_context() if options.tls is not None else None)
    server.add_generic_rpc_handlers((_prediction_handlers(PredictionService(core)),))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core), server)
    open_inference_grpc.add_to_server(core, server)  # KServe V2's GRPCInferenceService on the same port
    return server
