"""KServe's Python ModelServer serving a SavedModel as a KServe user writes a custom model (KServe's
"Deploy Custom Python Serving Runtime" guide): a `kserve.Model` that loads the SavedModel once and
whose `predict` calls its serving signature. KServe's ModelServer answers V1 REST
(`/v1/models/<name>:predict`, {"instances": [...]}), V2 REST (`/v2/models/<name>/infer`) and V2 gRPC
(`inference.GRPCInferenceService/ModelInfer`) with it.

The anchor bench/serving_bench.py measures `mlops serve` against. It runs in its own venv (kserve
0.15.2 and TensorFlow 2.16.2: `make kserve-setup` makes .venv-kserve from bench/kserve/requirements.lock):

    .venv-kserve/bin/python bench/kserve/model_server.py --model_dir <SavedModel dir> --model_name fraud \
        --http_port 8080 --grpc_port 8081 [any other kserve.ModelServer flag]
"""
import argparse
from typing import Dict, Optional, Union

import tensorflow as tf
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from kserve.utils.utils import generate_uuid

NUMPY_TO_V2 = {"float32": "FP32", "float64": "FP64", "int32": "INT32", "int64": "INT64", "bool": "BOOL"}


class SavedModelPredictor(Model):
    """The SavedModel's `serving_default` signature behind KServe's V1 and V2 protocols."""

    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = model_dir
        self.load()

    def load(self) -> bool:
        self.signature = tf.saved_model.load(self.model_dir).signatures["serving_default"]
        self.input_dtypes = {name: spec.dtype for name, spec in self.signature.structured_input_signature[1].items()}
        self.ready = True
        return self.ready

    def predict(self, payload: Union[Dict, InferRequest], headers: Optional[Dict[str, str]] = None):
        if isinstance(payload, InferRequest):  # V2, over REST or gRPC: one named tensor per input
            outputs = self.signature(**{tensor.name: tf.constant(tensor.as_numpy(), self.input_dtypes[tensor.name])
                                        for tensor in payload.inputs})
            return InferResponse(model_name=self.name, response_id=payload.id or generate_uuid(), infer_outputs=[
                InferOutput(name, list(value.shape), NUMPY_TO_V2[value.dtype.name], data=value.numpy())
                for name, value in outputs.items()])
        # V1: {"instances": [{input: value, ...}, ...]}, answered as TF Serving's row format
        instances = payload["instances"]
        outputs = self.signature(**{name: tf.constant([row[name] for row in instances], dtype)
                                    for name, dtype in self.input_dtypes.items()})
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values())).numpy().tolist()}
        columns = {name: value.numpy().tolist() for name, value in outputs.items()}
        return {"predictions": [{name: column[i] for name, column in columns.items()} for i in range(len(instances))]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])  # KServe's own flags (ports, workers...)
    parser.add_argument("--model_dir", required=True, help="a SavedModel directory")
    args, _ = parser.parse_known_args()
    ModelServer().start([SavedModelPredictor(args.model_name, args.model_dir)])
