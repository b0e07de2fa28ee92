"""One loaded model version: its signatures as TF Serving sees them, and calls on numpy arrays.

Loaded the way TF Serving loads a SavedModel: into a graph and a Session, each signature called
through a cached ``Session.make_callable`` on its tensor names (numpy in, numpy out) with the
request timeout enforced by TensorFlow itself (RunOptions ``timeout_in_ms``). A call proven cheap
runs in the caller's thread instead (see ``INLINE_SECONDS``). The signature defs (inputs, outputs,
method names) come from ``saved_model.pb``, so ``metadata`` and input checks agree with the official
server. Needs TensorFlow only (no TFX, no TFT: the Transform graph in the model is plain TF ops).
"""
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2, saved_model_pb2
from tensorflow.python.saved_model import loader_impl

from serving.codec.columns import ColumnNames, read_columns
from serving.codec.images import read_image_info
from serving.codec.model_extras import EXTRA_FIELDS
from serving.codec.periods import read_series_info
from serving.codec.signature import Signature, TensorSpecInfo, tensor_spec
from serving.errors import ServingError, invalid

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
# A batch whose call through TF's thread pool (where the deadline is enforced) answered within this
# runs in the caller's thread afterwards: no hand-off to the pool and back (for a small graph, most
# of a call's time), and TF's own advice for small graphs (RunOptions.inter_op_thread_pool = -1). No
# deadline can fire there, so only batches no larger than one measured this fast, and only graphs
# without loops, whose cost is set by the batch's shape rather than by its values.
INLINE_SECONDS = 0.002
LOOP_OPS = frozenset({"While", "StatelessWhile", "Enter"})
# Grappler's remapper fuses MatMul + BiasAdd + activation into oneDNN's _MklNativeFusedMatMul, which at a
# request's small shapes costs more than the three ops it replaces, while its convolution fusions
# pay (measured A/B in one process: bench/results/serving.md). So only a graph with no convolution
# is optimized without the remapper.
CONV_OPS = frozenset({"Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv2DBackpropInput", "Conv3DBackpropInputV2"})


def serve_meta_graph(model_dir: Path) -> meta_graph_pb2.MetaGraphDef:
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(model_dir) / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ValueError(f"{model_dir}: no meta graph tagged 'serve'")


def read_signature_defs(model_dir: Path) -> Dict[str, meta_graph_pb2.SignatureDef]:
    return dict(serve_meta_graph(model_dir).signature_def)


def check_rows(shapes: Iterable[Tuple[int, ...]], max_rows: int) -> None:
    """A request of more rows than ``max_rows`` is refused, as TF Serving words it."""
    rows = max((shape[0] for shape in shapes if shape), default=1)
    if rows > max_rows:
        raise invalid(f"Task size {rows} is larger than maximum input batch size {max_rows}")


def _check_shape(value: np.ndarray, spec: TensorSpecInfo) -> None:
    want, got = spec.shape, value.shape
    if want is None or (len(got) == len(want) and got[1:] == want[1:] and (not got or want[0] in (None, got[0]))):
        return  # the common case, without a loop: any batch size, the other dimensions as declared
    if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
        shown = "[" + ",".join("-1" if d is None else str(d) for d in want) + "]"
        raise invalid(f"input '{spec.name}' has shape {list(got)}; the signature expects {shown}")


def graph_ops(graph_def: Any) -> FrozenSet[str]:
    """The op types of a graph and of the functions in its library."""
    ops = {node.op for node in graph_def.node}
    ops.update(node.op for function in graph_def.library.function for node in function.node_def)
    return frozenset(ops)


def session_config(ops: FrozenSet[str]) -> config_pb2.ConfigProto:
    """A serving session's options for a graph of these op types (see CONV_OPS)."""
    config = config_pb2.ConfigProto()
    if ops.isdisjoint(CONV_OPS):
        config.graph_options.rewrite_options.remapping = rewriter_config_pb2.RewriterConfig.OFF
    return config


@dataclass
class SignatureCall:
    """One (signature, inputs, outputs) selection's callables: ``pooled`` on TF's inter-op pool,
    under the deadline; ``inline`` in the caller's thread, for batches up to ``inline_rows``."""
    pooled: Any
    inline: Any
    inline_rows: int = 0


def error_summary(error: Exception) -> str:
    """The line of a TF error that says what is wrong (not "Graph execution error:" or the node trace)."""
    text = getattr(error, "message", None) or str(error)
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Graph execution error", "Detected at node", "File ", "[[", "Node:")):
            return line.split(" [[")[0].split("\t [[")[0].strip()
    return type(error).__name__


class Servable:
    """A SavedModel version held in memory. Thread-safe: TF functions may be called concurrently."""

    def __init__(self, name: str, version: int, path: Path, timeout_s: Optional[float] = None):
        self.name, self.version, self.path = name, int(version), Path(path)
        self._graph = tf.Graph()
        # TF's loader.load parses saved_model.pb twice; its steps, run here, use the one parse that
        # also chooses the session's options (a large image model's file is ~10 MB).
        loader = loader_impl.SavedModelLoader(str(self.path))
        meta_graph = loader.get_meta_graph_def_from_tags(["serve"])  # the one load_graph loads
        ops = graph_ops(meta_graph.graph_def)
        with self._graph.as_default():
            self._session = tf.compat.v1.Session(graph=self._graph, config=session_config(ops))
            saver, _ = loader.load_graph(self._graph, ["serve"])
            loader.restore_variables(self._session, saver)
            loader.run_init_ops(self._session, ["serve"])
        self.signature_defs = dict(meta_graph.signature_def)
        self.signatures = {
            key: Signature(key, sig.method_name, {n: tensor_spec(n, i) for n, i in sig.inputs.items()},
                           {n: tensor_spec(n, i) for n, i in sig.outputs.items()})
            for key, sig in self.signature_defs.items()
        }
        self._callables: Dict[Tuple, SignatureCall] = {}
        self._timeout_ms = int(timeout_s * 1000) if timeout_s else 0
        self._inlinable = ops.isdisjoint(LOOP_OPS)
        self.columns = read_columns(self.path)  # original column names -> the signatures' keys
        self.image = read_image_info(self.path)  # an image model's input size and class names
        self.series = read_series_info(self.path)  # a forecaster's history columns and time axis
        if self.series is not None and not self.columns.keys:  # its covariates by their column names too
            renamed = {column: key for column, key in self.series.covariates if column != key}
            self.columns = ColumnNames(renamed) if renamed else self.columns

    def extras(self) -> Dict[str, Any]:
        """This server's metadata beside TF Serving's signature defs, as JSON documents by field
        (EXTRA_FIELDS): the original column names, the image input, the series; those the model has."""
        documents = (self.columns.as_json() if self.columns.keys else None,
                     self.image.as_json() if self.image is not None else None,
                     self.series.as_json() if self.series is not None else None)
        return {field: document for field, document in zip(EXTRA_FIELDS, documents) if document is not None}

    def close(self) -> None:
        self._session.close()

    def _callable(self, signature: Signature, input_names: Tuple[str, ...],
                  output_names: Tuple[str, ...]) -> SignatureCall:
        key = (signature.key, input_names, output_names)
        call = self._callables.get(key)
        if call is None:
            composite = [n for n in (*input_names, *output_names)
                         if (signature.inputs.get(n) or signature.outputs[n]).kind == "composite"]
            if composite:
                raise invalid(f"signature {signature.key} has composite (sparse or ragged) tensors: "
                              f"{', '.join(composite)}; it cannot be served")
            options = config_pb2.CallableOptions(
                feed=[signature.inputs[n].tensor_name for n in input_names],
                fetch=[signature.outputs[n].tensor_name for n in output_names])
            if self._timeout_ms:
                options.run_options.timeout_in_ms = self._timeout_ms
            # Session's callable made from options: numpy straight into TF_SessionRunCallable, without
            # the per-call feed checks of Session.run.
            pooled = self._session._make_callable_from_options(options)
            options.run_options.inter_op_thread_pool = -1  # the caller's thread
            call = self._callables.setdefault(key, SignatureCall(
                pooled, self._session._make_callable_from_options(options)))
        return call

    def signature(self, key: str) -> Signature:
        key = key or DEFAULT_SIGNATURE
        if key not in self.signatures:
            raise invalid(f'Serving signature name: "{key}" not found in signature def')
        return self.signatures[key]

    def run(self, key: str, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = (),
            max_rows: Optional[int] = None) -> Dict[str, np.ndarray]:
        """Calls a signature on arrays already converted to its dtypes; checks the batch size (at most
        ``max_rows``), names and shapes first, so a bad request is an INVALID_ARGUMENT naming the input,
        never a TF stack trace."""
        shapes = {value.shape for value in inputs.values()}  # one pass; usually one shape
        if max_rows is not None:
            check_rows(shapes, max_rows)
        signature = self.signature(key)
        if inputs.keys() != signature.inputs.keys():
            unknown = sorted(set(inputs) - set(signature.inputs))
            if unknown:
                raise invalid(f"input tensor alias not found in signature: {unknown[0]}. Inputs expected to be "
                              f"in the set {{{','.join(sorted(signature.inputs))}}}.")
            missing = sorted(set(signature.inputs) - set(inputs))
            columns = [self.columns.name_of(key) for key in missing]
            raise invalid(f"Request inputs do not match required inputs for model `{self.name}`. "
                          f"Missing: {{{','.join(missing)}}}"
                          + (f" (columns {', '.join(columns)})" if columns != missing else ""))
        batch = {shape[0] if shape else None for shape in shapes}
        if len(batch) > 1:
            raise invalid("Input tensors must have equal 0th-dimension size; got "
                          + ", ".join(f"{n}: {v.shape[0] if v.ndim else 'scalar'}" for n, v in sorted(inputs.items())))
        if signature.scalar_inputs is None or {len(shape) for shape in shapes} != {1}:
            for name, value in inputs.items():
                _check_shape(value, signature.inputs[name])
        for name in output_filter:
            if name not in signature.outputs:
                raise invalid(f"output tensor alias not found in signature: {name} Outputs expected to be in the "
                              f"set {{{','.join(sorted(signature.outputs))}}}.")
        input_names = signature.input_names
        output_names = tuple(output_filter) or signature.output_names
        call = self._callable(signature, input_names, output_names)
        rows = next(iter(batch), None) or 1
        try:
            arrays = map(inputs.__getitem__, input_names)
            if rows <= call.inline_rows:
                values = call.inline(*arrays)
            else:
                started = time.perf_counter()
                values = call.pooled(*arrays)
                if self._inlinable and time.perf_counter() - started <= INLINE_SECONDS:
                    call.inline_rows = max(call.inline_rows, rows)
        except tf.errors.DeadlineExceededError:
            raise ServingError("DEADLINE_EXCEEDED", f"Deadline exceeded: {self.name} version {self.version} did "
                                                    "not answer in time") from None
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
            raise invalid(error_summary(e)) from None
        return dict(zip(output_names, values))

    def examples_input(self, key: str, method: str) -> str:
        """Classify/Regress need a signature of that method with one input of serialized tf.Examples,
        as TF Serving insists (a predict signature is refused, with TF Serving's message)."""
        signature = self.signature(key)
        if signature.method_name != method:
            kind = "classification" if method == CLASSIFY_METHOD else "regression"
            raise invalid(f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}")
        if len(signature.inputs) != 1:
            raise invalid(f"signature {signature.key} must have exactly one input (serialized tf.Examples)")
        return next(iter(signature.inputs))

    def run_examples(self, key: str, method: str, examples: Sequence[bytes]) -> Dict[str, np.ndarray]:
        return self.run(key, {self.examples_input(key, method): np.asarray(list(examples), dtype=object)})


def classification_results(outputs: Mapping[str, np.ndarray]) -> List[List[Tuple[str, float]]]:
    """Per example, (label, score) pairs from a classify signature's ``classes`` and ``scores``."""
    scores = outputs.get("scores")
    classes = outputs.get("classes")
    rows = len(scores) if scores is not None else len(classes)
    results = []
    for i in range(rows):
        row_scores = [] if scores is None else np.reshape(scores[i], [-1]).tolist()
        row_classes = [] if classes is None else [c.decode() if isinstance(c, bytes) else str(c)
                                                  for c in np.reshape(classes[i], [-1])]
        width = max(len(row_scores), len(row_classes))
        results.append([(row_classes[j] if row_classes else "", row_scores[j] if row_scores else math.nan)
                        for j in range(width)])
    return results


def regression_results(outputs: Mapping[str, np.ndarray]) -> List[float]:
    values = outputs["outputs"]
    if values.ndim > 2 or (values.ndim == 2 and values.shape[1] != 1):
        raise invalid(f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
                      f"{list(values.shape)}")
    return [float(v) for v in np.reshape(values, [-1])]
