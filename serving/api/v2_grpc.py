"""The Open Inference Protocol's gRPC service (``inference.GRPCInferenceService``) on the same port
as TF Serving's, from the compiled messages and service stubs ``tritonclient`` ships (no .proto
copied here). Inputs arrive as typed ``contents`` or as ``raw_input_contents``; outputs go back as
``raw_output_contents``, as Triton sends them and its clients read them."""
from typing import Dict, Tuple

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from serving.api import open_inference
from serving.dataplane import DataPlane
from serving.errors import ServingError, invalid
from serving.runtime.traffic import metadata_client_key

# V2 datatype -> the InferTensorContents field that carries it (FP16 and BF16 travel raw only)
CONTENTS_FIELDS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def _parameters(parameters) -> Dict[str, object]:
    """InferParameter map -> plain values."""
    return {key: getattr(value, value.WhichOneof("parameter_choice")) for key, value in parameters.items()
            if value.WhichOneof("parameter_choice")}


def request_inputs(request: service_pb2.ModelInferRequest) -> Dict[str, Tuple[str, np.ndarray]]:
    if not request.inputs:
        raise invalid("the request has no inputs")
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise invalid(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs: give one per input, or none")
    inputs = {}
    for index, tensor in enumerate(request.inputs):
        name = tensor.name
        if name in inputs:
            raise invalid(f"input '{name}' is given twice")
        datatype = tensor.datatype
        if datatype not in open_inference.NUMPY_TYPES:
            known = ", ".join(open_inference.NUMPY_TYPES)
            raise invalid(f"input '{name}': datatype {datatype!r} is not one of {known}")
        shape = tuple(int(d) for d in tensor.shape)
        if any(d < 0 for d in shape):
            raise invalid(f"input '{name}': shape {list(shape)} has a negative dimension")
        if raw:
            array = open_inference.array_from_raw(raw[index], datatype, shape, name)
        else:
            field = CONTENTS_FIELDS.get(datatype)
            if field is None:
                raise invalid(f"input '{name}': {datatype} travels in raw_input_contents only")
            values = list(getattr(tensor.contents, field))
            dtype = open_inference.NUMPY_TYPES[datatype]
            flat = np.array(values, dtype=dtype)
            if flat.size != int(np.prod(shape)):
                raise invalid(f"input '{name}': {flat.size} values for shape {list(shape)}")
            array = flat.reshape(shape)
        inputs[name] = (datatype, array)
    return inputs


class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, core: DataPlane):
        self.core = core

    @staticmethod
    def _abort(context: grpc.ServicerContext, error: ServingError):
        context.abort(getattr(grpc.StatusCode, error.code), error.message)

    def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=self.core.manager.ready())

    def ServerMetadata(self, request, context):
        metadata = open_inference.server_metadata()
        return service_pb2.ServerMetadataResponse(name=metadata["name"], version=metadata["version"],
                                                  extensions=metadata["extensions"])

    def ModelReady(self, request, context):
        spec = open_inference.model_spec(request.name, request.version)
        return service_pb2.ModelReadyResponse(ready=open_inference.is_ready(self.core, spec))

    def ModelMetadata(self, request, context):
        try:
            metadata = open_inference.describe(self.core, open_inference.model_spec(request.name, request.version))
        except ServingError as e:
            return self._abort(context, e)
        response = service_pb2.ModelMetadataResponse(name=metadata["name"], versions=metadata["versions"],
                                                     platform=metadata["platform"])
        for kind in ("inputs", "outputs"):
            for tensor in metadata[kind]:
                getattr(response, kind).add(**tensor)
        return response

    def ModelInfer(self, request, context):
        try:
            inputs = request_inputs(request)
            spec = open_inference.model_spec(request.model_name, request.model_version,
                                             _parameters(request.parameters))
            model, _, outputs = self.core.predict(
                spec, lambda signature, columns: open_inference.check_inputs(columns.rename(inputs), signature),
                [output.name for output in request.outputs], entrypoint="V2_GRPC",
                client_key=metadata_client_key(context.invocation_metadata()))
        except ServingError as e:
            return self._abort(context, e)
        response = service_pb2.ModelInferResponse(model_name=model.name, model_version=str(model.version),
                                                  id=request.id)
        for name, array in outputs.items():
            response.outputs.add(name=name, datatype=open_inference.datatype_of_array(array), shape=array.shape)
            response.raw_output_contents.append(open_inference.raw_contents(array))
        return response


def add_to_server(core: DataPlane, server: grpc.Server) -> None:
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(core), server)
