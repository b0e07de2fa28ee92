"""A user's image folder (class sub-folders, nested folders, JPEG/PNG/RGBA PNG/GIF/BMP of varied
sizes, a grayscale JPEG, a truncated JPEG, a fake PNG, a text file, an empty class, a class of one)
and the same images as a CSV of paths: each trains, is blessed and pushed with only --data (and
--image-column/--label for the CSV). The served model takes JPEG bytes over REST ({"b64": ...}) and
gRPC (DT_STRING), `mlops predict` and `mlops edge predict` take files, and all agree with the
SavedModel on images no run has seen."""
import base64
import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import int8_shrink, pixel_baseline_accuracy, run_cli_config, served_accuracy
from tests.messy_images import fresh_patches, labels_csv, photo_folder

pytestmark = pytest.mark.pipeline

SIZE = "32"  # small images keep the suite's time in check; the default size is the data's (48 here)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from pipelines.runners.local import run_pipeline

    home, data = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("images")
    folder, skipped = photo_folder(data / "My Photos")
    out = {}
    config = run_cli_config("--data", str(folder), "--image-size", SIZE, "--hparam", "epochs=10", home=home)
    out["folder"] = (config, run_pipeline(config, track=False), skipped)
    csv_path = labels_csv(folder, data / "labels.csv")
    config = run_cli_config("--data", str(csv_path), "--image-column", "File Path", "--label", "What It Shows",
                            "--image-size", SIZE, "--hparam", "epochs=10", "--no-edge", "--name", "photo_csv",
                            home=home)
    out["csv"] = (config, run_pipeline(config, track=False), skipped)
    return out


@pytest.mark.parametrize("layout", ["folder", "csv"])
def test_a_folder_and_a_csv_of_paths_train_bless_and_push(runs, layout):
    config, report, _ = runs[layout]
    assert report.succeeded, report.error
    assert config.task_name == "multiclass" and config.family == "cnn"
    assert report.blessed and report.pushed_path, report.blessing_reason
    label = config.targets[0][0]
    model_accuracy = served_accuracy(report, label)
    baseline_accuracy = pixel_baseline_accuracy(report, int(SIZE), label)  # the test's own, same split
    assert model_accuracy >= baseline_accuracy, (model_accuracy, baseline_accuracy)


def test_debris_is_listed_and_skipped(runs):
    from pipelines.summary import format_input

    config, _, skipped = runs["folder"]
    assert set(config.images.classes) == {"petal", "roof", "sky"}
    assert config.images.images == 3 * 41  # 40 patches and a grayscale one per class; the broken JPEG left out
    text = "\n".join(format_input(config))
    for name in skipped["corrupt"] + skipped["not_image"] + skipped["classes"]:
        assert name in text, (name, text)
    assert "images resized to 32x32 (--image-size)" in text


def _saved_model_classes(model_dir: str, images):
    import tensorflow as tf

    model = tf.saved_model.load(model_dir)
    return model.signatures["serving_default"](image=tf.constant(images))["predictions"].numpy()


def test_rest_grpc_predict_and_edge_agree_with_the_saved_model(runs, tmp_path):
    from cli.main import main
    from serving.client import Target, image_request, model_inputs, model_metadata, predict_grpc, predict_rest
    from serving.options import ServerOptions
    from serving.server import start_server

    config, report, _ = runs["folder"]
    patches = fresh_patches(6)
    files = []
    for i, (_, data) in enumerate(patches):
        files.append(tmp_path / f"fresh_{i}.jpg")
        files[-1].write_bytes(data)
    reference = _saved_model_classes(report.pushed_path, [data for _, data in patches])
    server = start_server(config.home.serving_dir, "127.0.0.1", 0, 0, ServerOptions(poll_seconds=0.2))
    try:
        target = Target("127.0.0.1", config.name)
        body = image_request(files)
        assert set(body["instances"][0]) == {"b64"}
        rest = np.asarray(predict_rest("127.0.0.1", server.rest_port, target, body)["predictions"])
        metadata = model_metadata(target, server.rest_port, server.grpc_port)  # GetModelMetadata
        assert metadata == model_metadata(target, server.rest_port) and "image" in metadata
        inputs, names = model_inputs(metadata, target)
        assert inputs["image"]["dtype"] == "DT_STRING"
        grpc = np.asarray(predict_grpc("127.0.0.1", server.grpc_port, target, body, inputs, names)["predictions"])
        named_rows = [{"image": {"b64": base64.b64encode(data).decode()}} for _, data in patches]
        named = predict_rest("127.0.0.1", server.rest_port, target, {"instances": named_rows})  # the named form
        out, out_grpc = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["predict", "--model", config.name, "--rest-port", str(server.rest_port),
                         *map(str, files)]) == 0
        with contextlib.redirect_stdout(out_grpc):  # gRPC alone: class names from GetModelMetadata
            assert main(["predict", "--model", config.name, "--grpc", "--grpc-port", str(server.grpc_port),
                         "--rest-port", "1", *map(str, files)]) == 0
        v2 = _v2_predictions(server, config.name, [data for _, data in patches])
    finally:
        server.stop()
    for predictions in v2:  # the Open Inference Protocol: BYTES in binary (REST) and raw (gRPC)
        np.testing.assert_allclose(predictions, reference, atol=1e-5)
    np.testing.assert_allclose(rest, reference, atol=1e-5)
    np.testing.assert_allclose(grpc, reference, atol=1e-5)
    np.testing.assert_allclose(np.asarray(named["predictions"]), reference, atol=1e-5)
    lines = out.getvalue().strip().splitlines()
    classes = _class_names(report)
    assert [line.split("\t")[1] for line in lines] == [classes[i] for i in reference.argmax(-1)]
    assert [line.split("\t")[1] for line in out_grpc.getvalue().strip().splitlines()] == \
        [line.split("\t")[1] for line in lines]

    # the edge: host decoding (Pillow) into the int8 model (uint8 input) gives the SavedModel's classes
    edge_dir = Path(report.pushed_path) / "tflite"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["edge", "predict", str(edge_dir / "int8.tflite"), *map(str, files)]) == 0
    edge_classes = [line.split("\t")[1] for line in out.getvalue().strip().splitlines()]
    agree = np.mean([a == classes[i] for a, i in zip(edge_classes, reference.argmax(-1))])
    assert agree >= 5 / 6, (edge_classes, reference.argmax(-1))


def _v2_predictions(server, name: str, images):
    """The model over KServe V2 with Triton's clients: the encoded images as one BYTES tensor."""
    import tritonclient.grpc as v2_grpc
    import tritonclient.http as v2_http

    out = []
    for module, port in ((v2_http, server.rest_port), (v2_grpc, server.grpc_port)):
        client = module.InferenceServerClient(f"127.0.0.1:{port}")
        try:
            metadata = (client.get_model_metadata(name) if module is v2_http
                        else client.get_model_metadata(name, as_json=True))
            assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == [("image", "BYTES")]
            tensor = module.InferInput("image", [len(images)], "BYTES")
            tensor.set_data_from_numpy(np.array(images, dtype=object))
            out.append(client.infer(name, [tensor]).as_numpy("predictions"))
        finally:
            client.close()
    return out


def _class_names(report):
    from serving.codec.images import read_image_info

    return list(read_image_info(report.pushed_path).class_names)


def test_edge_variants_pass_parity_and_int8_takes_uint8_pixels(runs):
    import json

    from serving.edge_runtime import EdgeModel

    _, report, _ = runs["folder"]
    edge_dir = Path(report.pushed_path) / "tflite"
    sidecar = json.loads((edge_dir / "edge.json").read_text())
    assert sidecar["image"]["size"] == 32 and sidecar["inputs"][0]["kind"] == "image"
    assert sidecar["host_decoding"]["top_class_agreement"] == 1.0 and sidecar["host_decoding"]["max_abs_diff"] < 1e-3
    assert {"float32", "int8"} <= set(sidecar["variants"])
    int8 = sidecar["variants"]["int8"]
    assert int8["metric_drop"] <= 0.01 and int8["note"] == "full integer, uint8 input"
    assert int8_shrink(sidecar["variants"]) >= 3.5, sidecar["variants"]
    details = EdgeModel(edge_dir / "int8.tflite").runner.get_input_details()
    assert details["image"]["dtype"] == np.uint8


def test_the_pixels_signature_equals_the_bytes_signature_on_host_decoded_pixels(runs):
    import tensorflow as tf

    from serving.codec.images import load_batch

    _, report, _ = runs["folder"]
    patches = fresh_patches(4, seed=7)
    paths = []
    for i, (_, data) in enumerate(patches):
        paths.append(Path(report.pushed_path).parent / f".probe_{i}.jpg")
        paths[-1].write_bytes(data)
    try:
        pixels = load_batch(paths, 32)
    finally:
        for path in paths:
            path.unlink()
    model = tf.saved_model.load(report.pushed_path)
    by_pixels = model.signatures["serving_pixels"](pixels=tf.constant(pixels))["predictions"].numpy()
    by_bytes = _saved_model_classes(report.pushed_path, [data for _, data in patches])
    np.testing.assert_allclose(by_pixels, by_bytes, atol=1e-4)


def test_anomaly_on_images_trains_the_conv_autoencoder_on_the_normal_class(tmp_path):
    """Two class folders and --task anomaly: the more frequent class is normal; the autoencoder
    trains on it, is gated on AUC and ships to the edge."""
    import shutil

    from pipelines.runners.local import run_pipeline

    root, _ = photo_folder(tmp_path / "src", per_class=40)
    for label, source, count in (("ok", "sky", 40), ("defect", "petal", 6)):
        (tmp_path / "inspect" / label).mkdir(parents=True)
        for path in sorted(p for p in (root / source).rglob("*") if p.suffix in (".png", ".jpg"))[:count]:
            shutil.copy(path, tmp_path / "inspect" / label / path.name)
    config = run_cli_config("--data", str(tmp_path / "inspect"), "--task", "anomaly", "--image-size", SIZE,
                            "--hparam", "epochs=5", home=tmp_path / "home")
    assert config.family == "autoencoder" and config.images.augment == ()
    report = run_pipeline(config, track=False)
    assert report.succeeded and report.blessed, report.error or report.blessing_reason
    # the test's own yardstick: an IsolationForest (fixed seed) on the pixels of the same train split
    import tensorflow as tf
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score

    from tests.helpers import image_pixels, split_frame

    _, train = split_frame(report, "train")
    serialized, evaluation = split_frame(report, "eval")
    image = next(c for c in train.columns if isinstance(train[c].iloc[0], bytes))
    truth = (evaluation[config.targets[0][0]] == "defect").to_numpy()
    assert 0 < truth.sum() < len(truth), truth
    forest = IsolationForest(random_state=0).fit(image_pixels(train[image], int(SIZE)))
    forest_auc = roc_auc_score(truth, -forest.score_samples(image_pixels(evaluation[image], int(SIZE))))
    served = tf.saved_model.load(report.pushed_path)
    score = served.signatures["serving_tf_example"](examples=tf.constant(serialized))["score"].numpy().reshape(-1)
    model_auc = roc_auc_score(truth, score)
    assert model_auc >= forest_auc - 0.02, (model_auc, forest_auc)
    assert report.edge["variants"]["float32"]["accepted"]
