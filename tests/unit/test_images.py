"""Image input without a pipeline: scanning a folder or a CSV of paths, what is skipped and why, the
default size, staging, and the host's decoding against the graph's on every format."""
import io
from pathlib import Path

import numpy as np
import pytest

from pipelines.inputs import image_folders as img
from pipelines.inputs.column_kinds import InputDataError
from tests.messy_images import labels_csv, photo_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return photo_folder(tmp_path_factory.mktemp("photos") / "photos", per_class=10)


def test_a_folder_scan_keeps_images_of_every_format_and_lists_the_debris(folder):
    root, expected = folder
    scan = img.scan_folder(root)
    assert {item.labels[0] for item in scan.items} == {"sky", "roof", "petal"}
    suffixes = {item.path.suffix for item in scan.items}
    assert {".jpg", ".png", ".gif", ".bmp"} <= suffixes
    assert any("/batch2/" in item.relative for item in scan.items)  # nested below a class
    skipped = dict(scan.skipped)
    assert "roof/fake.png" in skipped and "roof/notes.txt" in skipped
    assert "empty/" in skipped and "lonely/" in skipped and "1 image(s)" in skipped["lonely/"]
    assert not any(name.startswith(".") for name in skipped)
    assert 30 <= scan.median_side <= 90


def test_staging_drops_what_does_not_decode_and_is_stable(folder, tmp_path):
    root, _ = folder
    scan = img.scan_folder(root)
    target = tmp_path / "images.tfrecord"
    written, broken = img.stage(scan, target, ["label"], ["string"])
    # a truncated JPEG: left out by the scan (header) or by staging (full decode), never staged
    dropped = [name for name, _ in scan.skipped + broken]
    assert "sky/broken.jpg" in dropped and written == len(scan.items) - len(broken)
    mtime = target.stat().st_mtime_ns
    img.stage(scan, target, ["label"], ["string"])  # unchanged: file and mtime kept (TFX's cache holds)
    assert target.stat().st_mtime_ns == mtime

    from serving.codec.examples import decode, read_records

    record = decode(read_records([str(target)], 1)[0], text=False)
    assert set(record) == {"image", "file", "label"} and record["label"] == [b"petal"]
    stem = (root / "sky" / "sky_000.jpg").read_bytes()
    (root / "sky" / "late.jpg").write_bytes(stem[: int(len(stem) * 0.8)])  # header intact, scan data cut
    try:
        late = img.scan_folder(root)
        _, broken = img.stage(late, tmp_path / "late.tfrecord", ["label"], ["string"])
    finally:
        (root / "sky" / "late.jpg").unlink()
    assert "sky/late.jpg" in [name for name, _ in late.skipped + broken]


def test_a_csv_of_paths_reads_relative_paths_and_names_a_missing_column(folder, tmp_path):
    root, _ = folder
    path = labels_csv(root, root.parent / "labels.csv")
    scan = img.scan_csv(path, "File Path", ["What It Shows"])
    assert {item.labels[0] for item in scan.items} == {"SKY", "ROOF", "PETAL"}
    assert "photos/roof/notes.txt" in dict(scan.skipped)
    with pytest.raises(InputDataError, match="no column 'path'"):
        img.scan_csv(path, "path", ["What It Shows"])


def test_too_few_classes_is_one_line(tmp_path):
    from PIL import Image

    (tmp_path / "only").mkdir()
    for i in range(3):
        Image.new("RGB", (10, 10)).save(tmp_path / "only" / f"{i}.png")
    with pytest.raises(InputDataError, match="needs at least 2 class folders"):
        img.scan_folder(tmp_path)
    assert img.is_image_folder(tmp_path) and not img.is_image_folder(tmp_path / "none")


@pytest.mark.parametrize("median, family_min, pretrained, size", [
    (41, 8, False, 48), (8, 8, False, 8), (20, 32, False, 32), (500, 8, False, 128), (41, 8, True, 224)])
def test_the_default_size_follows_the_data_and_the_family(median, family_min, pretrained, size):
    assert img.default_image_size(median, family_min, pretrained) == size


def test_the_task_is_multiclass_binary_for_two_and_regression_for_many_numbers():
    items = [img.ImageItem(Path(f"{i}.png"), f"{i}.png", (label,)) for i, label in enumerate("aabbcc")]
    assert img.infer_image_task(img.ImageScan(items=items))[0] == "multiclass"
    assert img.infer_image_task(img.ImageScan(items=items[:4]))[0] == "binary"
    numbers = [img.ImageItem(Path(f"{i}.png"), f"{i}.png", (str(i * 1.5),)) for i in range(40)]
    assert img.infer_image_task(img.ImageScan(items=numbers))[0] == "regression"


def _encoded(image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def test_host_decoding_matches_the_graph_on_every_format_and_mode():
    """Pillow on the host and TF in the graph give the same pixels (JPEG with the accurate DCT,
    the same antialiased bilinear resize), for RGB, grayscale, RGBA, palette, GIF and BMP."""
    import tensorflow as tf
    from PIL import Image
    from sklearn.datasets import load_sample_image

    from components.image_layers import decode_batch
    from serving.codec.images import load_pixels

    photo = Image.fromarray(load_sample_image("flower.jpg")).crop((200, 100, 290, 170))
    rgba = photo.convert("RGBA")
    rgba.putalpha(90)
    samples = {"jpeg": _encoded(photo, "JPEG", quality=85), "gray_jpeg": _encoded(photo.convert("L"), "JPEG"),
               "png": _encoded(photo, "PNG"), "rgba_png": _encoded(rgba, "PNG"),
               "palette_png": _encoded(photo.convert("P", palette=1), "PNG"),
               "gif": _encoded(photo.convert("P", palette=1), "GIF"), "bmp": _encoded(photo, "BMP")}
    for size in (32, 64, 128):  # down- and up-scaling
        graph = decode_batch(tf.constant(list(samples.values())), size).numpy()
        for (name, data), from_graph in zip(samples.items(), graph):
            host = load_pixels(data, size)
            assert np.abs(host - from_graph).max() < 0.01, (name, size, np.abs(host - from_graph).max())
    empty = decode_batch(tf.constant([b""]), 8).numpy()
    assert empty.shape == (1, 8, 8, 3) and not empty.any()


def test_an_unreadable_file_is_one_line(tmp_path):
    from serving.codec.images import ImageError, load_pixels

    (tmp_path / "x.jpg").write_bytes(b"nope")
    with pytest.raises(ImageError, match="x.jpg: not a readable image"):
        load_pixels(tmp_path / "x.jpg", 8)
    with pytest.raises(ImageError, match="no such file"):
        load_pixels(tmp_path / "y.jpg", 8)


def test_split_folders_and_loose_images_are_named(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for label in ("cat", "dog"):
            (tmp_path / "ds" / split / label).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (8, 8)).save(tmp_path / "ds" / split / label / f"{i}.png")
    with pytest.raises(InputDataError, match="train, val look like splits, not classes; give --data"):
        img.scan_folder(tmp_path / "ds")
    (tmp_path / "flat").mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8)).save(tmp_path / "flat" / f"{i}.jpg")
    assert img.is_image_folder(tmp_path / "flat")
    with pytest.raises(InputDataError, match="3 images and no class folders"):
        img.scan_folder(tmp_path / "flat")
