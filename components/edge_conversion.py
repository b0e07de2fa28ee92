"""TF Lite conversion of the edge function: saved once on its own, every variant converted from
that SavedModel, builtin ops only (a Flex model does not run on LiteRT's runtimes)."""
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import numpy as np
import tensorflow as tf

from serving.edge_runtime import SIGNATURE


def save_edge_function(concrete: Any, model: Any, directory: Path) -> None:
    """The edge function as a SavedModel of its own, converted once per variant.

    TF Lite's ``from_concrete_functions`` saves and reloads the whole model (every restored Keras
    function: 20 s a conversion for MobileNet) for each conversion; this saves only the function and
    the variables it reads (3 s, once). A function that reads another resource (a lookup table) gets
    the whole model saved with it."""
    minimal = tf.Module()
    minimal.variables_read = list(concrete.variables)  # what it captures (a model saved without traces has no list)
    try:
        tf.saved_model.save(minimal, str(directory), signatures={SIGNATURE: concrete})
    except (AssertionError, ValueError) as e:  # TF asserts "an 'untracked' resource": more than variables
        if "untracked" not in str(e).lower():
            raise
        shutil.rmtree(directory, ignore_errors=True)
        tf.saved_model.save(model, str(directory), signatures={SIGNATURE: concrete})


def convert(saved_dir: Path, variant: str,
            representative: Optional[Callable[[], Iterable[Dict[str, np.ndarray]]]] = None,
            uint8_input: bool = False) -> Tuple[bytes, str]:
    """The flatbuffer of the edge SavedModel (``save_edge_function``) and a note (e.g. int8 falling
    back to float kernels for some ops). ``uint8_input``: a full-integer variant takes uint8 (an image
    model's 0-255 pixels)."""
    builtins = tf.lite.OpsSet.TFLITE_BUILTINS

    def converter(ops, integer_input=False):
        c = tf.lite.TFLiteConverter.from_saved_model(str(saved_dir), signature_keys=[SIGNATURE])
        c.target_spec.supported_ops = ops
        if variant == "float16":
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.target_spec.supported_types = [tf.float16]
        elif variant == "dynamic_range":
            c.optimizations = [tf.lite.Optimize.DEFAULT]
        elif variant == "int8":
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.representative_dataset = representative
            if integer_input:
                c.inference_input_type = tf.uint8
        return c

    if variant != "int8":
        return converter([builtins]).convert(), ""
    try:
        if uint8_input:
            return converter([tf.lite.OpsSet.TFLITE_BUILTINS_INT8], True).convert(), "full integer, uint8 input"
        return converter([tf.lite.OpsSet.TFLITE_BUILTINS_INT8]).convert(), "full integer"
    except Exception as e:  # noqa: BLE001 - the converter raises several types; the mixed build is the fallback
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return converter([tf.lite.OpsSet.TFLITE_BUILTINS_INT8, builtins]).convert(), \
            f"int8 where possible, float kernels elsewhere ({first_line[:120]})"


def conversion_problem(error: Exception) -> str:
    """The op the converter could not lower, out of its long MLIR message."""
    text = str(error)
    ops = sorted(set(re.findall(r"failed to legalize operation '([\w.]+)'", text)))
    if ops:
        return f"{', '.join(ops)} has no builtin kernel (it would need Flex, which LiteRT runtimes lack)"
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op ([^\n]*?)(?: during|\n|$)", text)))
    if ops:
        return "; ".join(f"{op} {why}" for op, why in ops)[:300]
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:300]
