"""TF Serving's gRPC API (port 8500): PredictionService (Predict, Classify, Regress, GetModelMetadata)
and ModelService (GetModelStatus), grpcio servicers served by ``serving.grpc_http2``, with the official
generated messages (Predict reads its request as a LeanPredictRequest: the same wire format, each
input's TensorProto left as bytes); the Open Inference Protocol's GRPCInferenceService beside them
(``serving.open_inference_grpc``)."""
from typing import Any, Dict, Optional, Tuple

import grpc
import numpy as np
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving import open_inference_grpc, tensors
from serving.core import ModelSpec, ServingCore
from serving.errors import ServingError, invalid
from serving.grpc_http2 import Http2GrpcServer
from serving.traffic import metadata_client_key

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"


def _lean_predict_messages() -> Tuple[type, type]:
    """PredictRequest and PredictResponse as the server reads and writes them: the same fields and
    numbers, but each tensor's TensorProto as bytes (``tensors.tensors_from_bytes`` reads them,
    ``tensors.tensor_bytes`` writes them: a message and bytes are both length-delimited), and the
    tensor map as the repeated key/value entries a map is on the wire (a map's Python iteration costs
    ~2 us per entry, a repeated field's ~0.1 us). Request fields the server does not use
    (predict_streamed_options, client_id) are kept as unknown fields, as before."""
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="mlops/serving/lean_predict.proto", package="mlops.serving",
                                              syntax="proto3", dependency=[model_pb2.DESCRIPTOR.name])

    def lean(name: str, spec_number: int, tensors_name: str, tensors_number: int) -> Any:
        message = file.message_type.add(name=name)
        entry = message.nested_type.add(name="TensorEntry")
        entry.field.add(name="key", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
        entry.field.add(name="value", number=2, type=field.TYPE_BYTES, label=field.LABEL_OPTIONAL)
        message.field.add(name="model_spec", number=spec_number, type=field.TYPE_MESSAGE,
                          label=field.LABEL_OPTIONAL, type_name=".tensorflow.serving.ModelSpec")
        message.field.add(name=tensors_name, number=tensors_number, type=field.TYPE_MESSAGE,
                          label=field.LABEL_REPEATED, type_name=f".mlops.serving.{name}.TensorEntry")
        return message

    lean("LeanPredictRequest", 1, "inputs", 2).field.add(name="output_filter", number=3, type=field.TYPE_STRING,
                                                         label=field.LABEL_REPEATED)
    lean("LeanPredictResponse", 2, "outputs", 1)
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(file.name)
    except KeyError:
        pool.AddSerializedFile(file.SerializeToString())
    factory = message_factory.MessageFactory(pool)
    return tuple(factory.GetPrototype(pool.FindMessageTypeByName(f"mlops.serving.{name}"))
                 for name in ("LeanPredictRequest", "LeanPredictResponse"))


LeanPredictRequest, LeanPredictResponse = _lean_predict_messages()


def lean_inputs(request: Any) -> Dict[str, np.ndarray]:
    """A LeanPredictRequest's inputs as arrays; an input named twice is the last one, as in a map."""
    return tensors.tensors_from_bytes({entry.key: entry.value for entry in request.inputs}.items())


def lean_response(model: Any, signature_name: Optional[str], outputs: Dict[str, np.ndarray]) -> Any:
    """A LeanPredictResponse (a PredictResponse on the wire) of a model's outputs."""
    response = LeanPredictResponse()
    _fill_spec(response.model_spec, model, signature_name)
    for name, value in outputs.items():
        response.outputs.add(key=name, value=tensors.tensor_bytes(value))
    return response


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
    def __init__(self, core: ServingCore):
        self.core = core

    def Predict(self, request: Any, context: grpc.ServicerContext):
        """``request`` is a LeanPredictRequest (its inputs TensorProto bytes); the answer a
        LeanPredictResponse."""
        try:
            raw = lean_inputs(request)
            model, key, outputs = self.core.predict(
                _spec(request.model_spec),
                lambda signature, columns: tensors.cast_inputs(columns.rename(raw), signature),
                list(request.output_filter), entrypoint="GRPC",
                client_key=metadata_client_key(context.invocation_metadata()))
        except ServingError as e:
            return _abort(context, e)
        return lean_response(model, key, outputs)

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
    def __init__(self, core: ServingCore):
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
    """PredictionService as its generated registration has it, but Predict reads a LeanPredictRequest
    (and answers a LeanPredictResponse)."""
    def unary(method, request_type) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(method, request_deserializer=request_type.FromString,
                                                   response_serializer=lambda response: response.SerializeToString())
    return grpc.method_handlers_generic_handler(PREDICTION_SERVICE, {
        "Predict": unary(service.Predict, LeanPredictRequest),
        "Classify": unary(service.Classify, classification_pb2.ClassificationRequest),
        "Regress": unary(service.Regress, regression_pb2.RegressionRequest),
        "GetModelMetadata": unary(service.GetModelMetadata, get_model_metadata_pb2.GetModelMetadataRequest),
    })


def make_grpc_server(core: ServingCore, host: str, port: int, max_workers: int = 16) -> Http2GrpcServer:
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
