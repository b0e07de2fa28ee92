"""A signature as TF Serving sees it: each input's and output's name, dtype and shape, read from a
SavedModel's SignatureDef; what the codecs check a request against."""
import functools
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2


@dataclass(frozen=True)
class TensorSpecInfo:
    name: str
    dtype: tf.DType
    shape: Optional[Tuple[Optional[int], ...]]  # None: unknown rank; None dims: any size
    tensor_name: str = ""  # in the graph, e.g. "serving_default_amount:0"
    kind: str = ""  # "string", "bool", "int" or "float": checked per value, so not a DType compare

    @functools.cached_property
    def numpy_dtype(self) -> Any:
        return object if self.kind == "string" else self.dtype.as_numpy_dtype


def tensor_spec(name: str, info: meta_graph_pb2.TensorInfo) -> TensorSpecInfo:
    shape = None
    if not info.tensor_shape.unknown_rank:
        shape = tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)
    if info.WhichOneof("encoding") != "name" or not info.dtype:  # a composite (e.g. sparse) tensor
        return TensorSpecInfo(name, tf.variant, shape, "", "composite")
    dtype = tf.dtypes.as_dtype(info.dtype)
    kind = ("string" if dtype == tf.string else "bool" if dtype == tf.bool else "int" if dtype.is_integer
            else "float" if dtype.is_floating else "other")
    return TensorSpecInfo(name, dtype, shape, info.name, kind)


@dataclass(frozen=True)
class Signature:
    key: str
    method_name: str
    inputs: Dict[str, TensorSpecInfo]
    outputs: Dict[str, TensorSpecInfo]

    @functools.cached_property
    def input_names(self) -> Tuple[str, ...]:
        return tuple(sorted(self.inputs))

    @functools.cached_property
    def output_names(self) -> Tuple[str, ...]:
        return tuple(sorted(self.outputs))

    @functools.cached_property
    def input_dtypes(self) -> Dict[str, np.dtype]:
        """Each input's numpy dtype (object for strings), compared per request by ``tensors.cast_inputs``."""
        return {name: np.dtype(spec.numpy_dtype) for name, spec in self.inputs.items()}

    @functools.cached_property
    def uniform_dtype(self) -> Optional[np.dtype]:
        """The numpy dtype of every input, when they all share one (a tabular model's usual case)."""
        dtypes = set(self.input_dtypes.values())
        return dtypes.pop() if len(dtypes) == 1 else None

    @functools.cached_property
    def scalar_inputs(self) -> Optional[Dict[Tuple[str, Any], Tuple[str, ...]]]:
        """When every input takes one value per row (shape [-1]), the inputs by (kind, numpy dtype), so
        a request's values of one dtype convert and check together; else None."""
        if any(spec.shape != (None,) for spec in self.inputs.values()):
            return None
        groups: Dict[Tuple[str, Any], List[str]] = {}
        for name in self.input_names:
            spec = self.inputs[name]
            groups.setdefault((spec.kind, spec.numpy_dtype), []).append(name)
        return {group: tuple(names) for group, names in groups.items()}
