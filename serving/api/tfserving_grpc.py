"""TF Serving's gRPC API (port 8500) as grpcio servicers over the data plane: PredictionService
(Predict, Classify, Regress, GetModelMetadata) and ModelService (GetModelStatus), with the official
generated messages (protobuf's C++ parser reads them)."""
import json
from typing import Any, Optional

import grpc
from google.protobuf import wrappers_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.codec import tensors
from serving.codec.model_extras import EXTRA_FIELDS, SIGNATURE_DEF
from serving.dataplane import DataPlane, ModelSpec
from serving.errors import ServingError, invalid
from serving.runtime.traffic import metadata_client_key

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

    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext):
        try:
            raw = {name: tensors.proto_to_array(proto) for name, proto in request.inputs.items()}
            model, key, outputs = self.core.predict(
                _spec(request.model_spec),
                lambda signature, columns: tensors.cast_inputs(columns.rename(raw), signature),
                list(request.output_filter), entrypoint="GRPC",
                client_key=metadata_client_key(context.invocation_metadata()))
        except ServingError as e:
            return _abort(context, e)
        response = predict_pb2.PredictResponse()
        _fill_spec(response.model_spec, model, key)
        for name, array in outputs.items():
            tensors.fill_tensor_proto(response.outputs[name], array)
        return response

    def _on_examples(self, method: str, request: Any, context: grpc.ServicerContext):
        """Classify or Regress: the request's tf.Examples through the data plane; (model, key, results)."""
        examples = tensors.examples_from_input(request.input)
        return getattr(self.core, method)(_spec(request.model_spec), examples, entrypoint="GRPC",
                                          client_key=metadata_client_key(context.invocation_metadata()))

    def Classify(self, request: classification_pb2.ClassificationRequest, context: grpc.ServicerContext):
        try:
            model, key, results = self._on_examples("classify", request, context)
        except ServingError as e:
            return _abort(context, e)
        response = classification_pb2.ClassificationResponse()
        _fill_spec(response.model_spec, model, key)
        for row in results:
            response.result.classifications.add().classes.extend(
                classification_pb2.Class(label=label, score=score) for label, score in row)
        return response

    def Regress(self, request: regression_pb2.RegressionRequest, context: grpc.ServicerContext):
        try:
            model, key, values = self._on_examples("regress", request, context)
        except ServingError as e:
            return _abort(context, e)
        response = regression_pb2.RegressionResponse()
        _fill_spec(response.model_spec, model, key)
        response.result.regressions.extend(regression_pb2.Regression(value=value) for value in values)
        return response

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest,
                         context: grpc.ServicerContext):
        """TF Serving's signature_def (a SignatureDefMap), and this server's own fields (EXTRA_FIELDS:
        each a JSON document in a StringValue, as REST's /metadata gives it), those the model has."""
        fields = list(request.metadata_field)
        try:
            unknown = [field for field in fields if field not in (SIGNATURE_DEF, *EXTRA_FIELDS)]
            if not fields or unknown:
                raise invalid(f"Metadata field must be among {', '.join((SIGNATURE_DEF, *EXTRA_FIELDS))}, got "
                              f"{fields}")
            model, signature_defs = self.core.metadata(_spec(request.model_spec))
        except ServingError as e:
            return _abort(context, e)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _fill_spec(response.model_spec, model, None)
        if SIGNATURE_DEF in fields:
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, signature in signature_defs.items():
                signature_map.signature_def[key].CopyFrom(signature)
            response.metadata[SIGNATURE_DEF].Pack(signature_map)
        for field, document in model.servable.extras().items():
            if field in fields:
                response.metadata[field].Pack(wrappers_pb2.StringValue(value=json.dumps(document)))
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


def add_to_server(core: DataPlane, server: grpc.Server) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(core), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core), server)
