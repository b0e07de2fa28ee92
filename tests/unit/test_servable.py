"""A servable (serving.runtime.servable): calls in the caller's thread or TF's pool, graph options, one parse
per load."""
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from serving.errors import ServingError

REPO = Path(__file__).resolve().parents[2]


def _saved_model(path: Path, loop: bool) -> Path:
    """A two-input SavedModel: ``y = a * 2 + b``, or ``a`` summed ``n[0]`` times in a while loop."""
    import tensorflow as tf

    if loop:
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="a"),
                                      tf.TensorSpec([None], tf.int32, name="n")])
        def serve(a, n):
            return {"y": tf.while_loop(lambda i, total: i < n[0], lambda i, total: (i + 1, total + a),
                                       [tf.constant(0), tf.zeros_like(a)])[1]}
    else:
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="a"),
                                      tf.TensorSpec([None], tf.float32, name="b")])
        def serve(a, b):
            return {"y": a * 2.0 + b}
    module = tf.Module()
    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


def _counted(call):
    counts = {"inline": 0, "pooled": 0}
    for kind in counts:
        function = getattr(call, kind)

        def counting(*args, function=function, kind=kind):
            counts[kind] += 1
            return function(*args)
        setattr(call, kind, counting)
    return counts


def test_a_batch_proven_cheap_runs_in_the_callers_thread_and_a_larger_one_is_measured_first(tmp_path):
    from serving.runtime.servable import Servable

    servable = Servable("m", 1, _saved_model(tmp_path / "1", loop=False), timeout_s=30)
    one = {"a": np.array([1.0], np.float32), "b": np.array([0.5], np.float32)}
    assert servable.run("", one)["y"].tolist() == [2.5]
    call = servable._callable(servable.signature(""), ("a", "b"), ("y",))
    counts = _counted(call)
    for _ in range(20):  # the first fast answer (2 ms: any quiet moment) opens batches of 1 to the caller's thread
        servable.run("", one)
        if call.inline_rows:
            break
    assert call.inline_rows == 1
    before = dict(counts)
    assert servable.run("", one)["y"].tolist() == [2.5] and counts["inline"] == before["inline"] + 1
    many = {"a": np.arange(64, dtype=np.float32), "b": np.ones(64, np.float32)}
    assert servable.run("", many)["y"].tolist() == [2.0 * i + 1 for i in range(64)]
    assert counts["pooled"] == before["pooled"] + 1  # a batch larger than any measured: through the pool
    servable.close()


def test_a_graph_with_a_loop_never_leaves_the_pool_and_keeps_its_deadline(tmp_path):

    from serving.runtime.servable import Servable

    servable = Servable("m", 1, _saved_model(tmp_path / "1", loop=True), timeout_s=0.3)
    quick = {"a": np.array([1.0], np.float32), "n": np.array([3], np.int32)}
    for _ in range(5):
        assert servable.run("", quick)["y"].tolist() == [3.0]
    assert servable._callable(servable.signature(""), ("a", "n"), ("y",)).inline_rows == 0
    with pytest.raises(ServingError) as e:
        servable.run("", {"a": np.array([1.0], np.float32), "n": np.array([10 ** 9], np.int32)})
    assert e.value.code == "DEADLINE_EXCEEDED"  # the loop alone runs for minutes: only the deadline ends it
    servable.close()


def _executed_ops(servable, inputs):
    """The op types one traced call of the default signature ran."""
    from tensorflow.core.protobuf import config_pb2

    signature = servable.signature("")
    metadata = config_pb2.RunMetadata()
    servable._session.run([spec.tensor_name for spec in signature.outputs.values()],
                          {signature.inputs[name].tensor_name: value for name, value in inputs.items()},
                          options=config_pb2.RunOptions(trace_level=config_pb2.RunOptions.FULL_TRACE),
                          run_metadata=metadata)
    return {node.timeline_label.split(" = ")[-1].split("(")[0] for device in metadata.step_stats.dev_stats
            for node in device.node_stats}


def test_dense_graphs_run_unfused_and_convolutions_keep_their_fusions(tmp_path):
    """Without a convolution the remapper is off (oneDNN's fused MatMul costs more than its parts at a
    request's shapes); a graph with one keeps the fused convolution. Answers equal the model's own."""
    from serving.runtime.servable import Servable

    weights = tf.constant([[1.0, -2.0], [0.5, 1.0], [-1.0, 0.25]])

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def dense(x):
        return {"y": tf.nn.relu(tf.nn.bias_add(tf.matmul(x, weights), [0.1, -0.1]))}

    @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 1], tf.float32, name="x")])
    def conv(x):
        return {"y": tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, tf.ones([2, 2, 1, 3]), 1, "VALID"), [0.5, 0.0, -9.0]))}

    rng = np.random.default_rng(0)
    for name, function, value, fused in (("dense", dense, rng.normal(size=(2, 3)), "FusedMatMul"),
                                         ("conv", conv, rng.normal(size=(1, 4, 4, 1)), "FusedConv2D")):
        module = tf.Module()
        module.serve = function
        tf.saved_model.save(module, str(tmp_path / name / "1"), signatures={"serving_default": function})
        servable = Servable(name, 1, tmp_path / name / "1")
        inputs = {"x": value.astype(np.float32)}
        np.testing.assert_allclose(servable.run("", inputs)["y"], function(inputs["x"])["y"].numpy(), rtol=1e-6)
        ran = _executed_ops(servable, inputs)
        assert any(fused in op for op in ran) == (name == "conv"), (name, sorted(ran))
        servable.close()


def test_a_version_loads_from_one_parse_of_its_saved_model(tmp_path, monkeypatch):
    """TF's loader.load parses saved_model.pb twice and choosing the session's options read it once more;
    a load parses it once, with variables and lookup tables restored as TF's loader restores them."""
    from tensorflow.python.saved_model import loader_impl

    from serving.runtime.servable import Servable

    module = tf.Module()
    module.scale = tf.Variable(2.0)
    module.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(["a", "b"], tf.constant([1, 2], tf.int64)), default_value=-1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="k")])
    def serve(k):
        return {"y": tf.cast(module.table.lookup(k), tf.float32) * module.scale}

    module.serve = serve
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": serve})
    parses, reads = [], []
    parse, read_bytes = loader_impl.parse_saved_model, Path.read_bytes
    monkeypatch.setattr(loader_impl, "parse_saved_model", lambda path: parses.append(path) or parse(path))
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self.name) or read_bytes(self))
    servable = Servable("m", 1, tmp_path / "1")
    assert len(parses) == 1 and "saved_model.pb" not in reads, (parses, reads)
    assert servable.run("", {"k": np.array([b"a", b"b", b"c"])})["y"].tolist() == [2.0, 4.0, -2.0]
    assert servable.signature_defs["serving_default"].inputs["k"].name.startswith("serving_default_k")
    servable.close()
