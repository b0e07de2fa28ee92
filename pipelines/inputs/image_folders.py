"""A user's images: a folder with one sub-folder per class, or a CSV of image paths and labels.

``scan`` finds the images and their labels and reads each header (Pillow, no TensorFlow): what
``build_config`` needs to choose the task, the classes and the image size. ``stage`` decodes each
image fully and writes the TFRecord of tf.Examples ImportExampleGen reads: the encoded bytes, the
label(s) and the file's relative path (the split hashes the path, so it is stable when files are
added). Files that are not readable images, empty classes and classes of fewer than 2 images are
listed and skipped; nothing usable left is one line.
"""
import csv
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from pipelines.inputs.column_kinds import InputDataError, infer_task
from serving.codec.images import FILE_FEATURE, IMAGE_FEATURE, ImageError, is_image_name, open_rgb

MIN_CLASS_IMAGES = 2
STAGED_NAME = "images.tfrecord"
# Image sizes a family may be given, and the largest chosen without --image-size
IMAGE_SIZES = (8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224)
MAX_DEFAULT_SIZE = 128
PRETRAINED_SIZE = 224
KEPT_FORMATS = ("JPEG", "PNG", "GIF", "BMP")  # TF's decoders read these; anything else is re-encoded as PNG
KEPT_MODES = ("1", "L", "P", "RGB", "RGBA", "LA")


@dataclass(frozen=True)
class ImageItem:
    path: Path
    relative: str  # the file's path under the folder (or as the CSV gives it): the split key
    labels: Tuple[str, ...]  # one per label column (the class folder's name for a folder)


@dataclass
class ImageScan:
    items: List[ImageItem]
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (file or class, why)
    sides: List[int] = field(default_factory=list)  # each image's shorter side

    @property
    def median_side(self) -> int:
        return int(statistics.median(self.sides)) if self.sides else 0


SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "test", "testing", "eval"}


def is_image_folder(path: Path) -> bool:
    """A folder of images (class sub-folders, or images with no classes, which ``scan_folder``
    refuses by name), rather than a table's parts."""
    if not path.is_dir():
        return False
    if any(p.is_file() and is_image_name(p) for p in path.iterdir()):
        return True
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if any(is_image_name(f) for f in _files(sub)):
            return True
    return False


def _files(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(root) / name


def _header(path: Path) -> Tuple[Optional[int], str]:
    """(shorter side, "") of a readable image header, else (None, why)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return min(image.size), ""
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        return None, f"not a readable image ({type(e).__name__})"


def scan_folder(folder: Path) -> ImageScan:
    """``folder/<class>/**/*``: every file is tried (an image with an unusual extension is still an image)."""
    if not folder.is_dir():
        raise InputDataError(f"{folder}: not a folder")
    scan = ImageScan(items=[])
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = [p.name for p in folder.iterdir() if p.is_file() and is_image_name(p)]
    if loose and not classes:
        raise InputDataError(f"{folder}: {len(loose)} images and no class folders; put each class's images in "
                             "a sub-folder named after it, or give a CSV of paths and labels with --image-column")
    splits = [c.name for c in classes if c.name.lower() in SPLIT_NAMES]
    if splits and len(splits) == len(classes) and any(p.is_dir() for c in classes for p in c.iterdir()):
        raise InputDataError(f"{folder}: {', '.join(splits)} look like splits, not classes; give --data "
                             f"{folder / splits[0]} (the pipeline splits by itself)")
    if loose:
        scan.skipped.append((str(folder), f"{len(loose)} image(s) outside a class folder"))
    for class_dir in classes:
        found = []
        for path in _files(class_dir):
            side, why = _header(path)
            if side is None:
                scan.skipped.append((str(path.relative_to(folder)), why))
                continue
            found.append((ImageItem(path, path.relative_to(folder).as_posix(), (class_dir.name,)), side))
        if len(found) < MIN_CLASS_IMAGES:
            scan.skipped.append((f"{class_dir.name}/", f"class with {len(found)} image(s); needs "
                                                       f"{MIN_CLASS_IMAGES} or more"))
            continue
        scan.items.extend(item for item, _ in found)
        scan.sides.extend(side for _, side in found)
    if len({item.labels for item in scan.items}) < 2:
        raise InputDataError(f"{folder}: needs at least 2 class folders with {MIN_CLASS_IMAGES} or more readable "
                             f"images each; found {len(classes)} folder(s), {len(scan.items)} usable image(s)")
    return scan


def scan_files(folder: Path, files: Mapping[str, bytes]) -> ImageScan:
    """The scan of a folder not yet written (a built-in use case's ``class/file -> bytes``), equal
    to ``scan_folder`` of it once written."""
    import io

    from PIL import Image

    scan = ImageScan(items=[])
    for relative in sorted(files):
        with Image.open(io.BytesIO(files[relative])) as image:
            scan.sides.append(min(image.size))
        scan.items.append(ImageItem(folder / relative, relative, (relative.split("/", 1)[0],)))
    return scan


def scan_csv(path: Path, image_column: str, labels: Sequence[str], delimiter: Optional[str] = None,
             encoding: str = "utf-8") -> ImageScan:
    """A CSV with an image path column (relative to the CSV's folder, or absolute) and label column(s)."""
    from serving.codec.columns import is_missing_text, sniff_delimiter

    if not path.is_file():
        raise InputDataError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding) as f:
        text = f.read()
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter or sniff_delimiter(text[:65536]))
    header = reader.fieldnames or []
    for column in (image_column, *labels):
        if column not in header:
            raise InputDataError(f"{path}: no column '{column}' (columns: {', '.join(header)})")
    scan = ImageScan(items=[])
    for line, row in enumerate(reader, start=2):
        cell = (row.get(image_column) or "").strip()
        if not cell:
            scan.skipped.append((f"{path.name}:{line}", f"no path in '{image_column}'"))
            continue
        values = tuple((row.get(label) or "").strip() for label in labels)
        if any(is_missing_text(v) for v in values):
            scan.skipped.append((cell, "no label"))
            continue
        image_path = (path.parent / cell).resolve() if not Path(cell).is_absolute() else Path(cell)
        if not image_path.is_file():
            scan.skipped.append((cell, "no such file"))
            continue
        side, why = _header(image_path)
        if side is None:
            scan.skipped.append((cell, why))
            continue
        scan.items.append(ImageItem(image_path, cell, values))
        scan.sides.append(side)
    if len(scan.items) < 2 * MIN_CLASS_IMAGES:
        raise InputDataError(f"{path}: {len(scan.items)} usable image(s) in column '{image_column}'; needs at least "
                             f"{2 * MIN_CLASS_IMAGES}")
    return scan


def infer_image_task(scan: ImageScan, label_index: int = 0) -> Tuple[str, str]:
    """multiclass by default; binary for two classes; regression for a numeric label of many values."""
    values = sorted({item.labels[label_index] for item in scan.items})
    kind = "string"
    if all(_is_number(v) for v in values):
        kind = "integer" if all(float(v).is_integer() for v in values) else "numeric"
    return infer_task(kind, values[:1000], len(values))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def class_counts(scan: ImageScan, label_index: int = 0) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for item in scan.items:
        counts[item.labels[label_index]] = counts.get(item.labels[label_index], 0) + 1
    return dict(sorted(counts.items()))


def default_image_size(median_side: int, family_min: int, pretrained: bool = False) -> int:
    """224 for a pretrained base; else the smallest size at or above the data's median side (and the
    family's minimum), at most MAX_DEFAULT_SIZE."""
    if pretrained:
        return PRETRAINED_SIZE
    want = max(median_side, family_min)
    size = next((s for s in IMAGE_SIZES if s >= want), IMAGE_SIZES[-1])
    return max(family_min, min(size, MAX_DEFAULT_SIZE))


def _encoded(item: ImageItem) -> bytes:
    """The file's bytes when TF's decoders read them as Pillow does; else the RGB image as PNG."""
    import io

    from PIL import Image

    data = item.path.read_bytes()
    image = open_rgb(data, item.relative)  # raises ImageError on a truncated or broken file
    with Image.open(io.BytesIO(data)) as original:
        if original.format in KEPT_FORMATS and original.mode in KEPT_MODES:
            return data
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def label_value(text: str, kind: str):
    return int(float(text)) if kind == "integer" else float(text) if kind == "numeric" else text


def label_kinds(scan: ImageScan, tasks: Sequence[str]) -> List[str]:
    """Per label: integer (0/1 and class numbers), numeric (regression) or string (class names)."""
    kinds = []
    for i, task in enumerate(tasks):
        values = {item.labels[i] for item in scan.items}
        if task == "regression":
            kinds.append("numeric")
        elif all(_is_number(v) and float(v).is_integer() for v in values) and task != "multiclass":
            kinds.append("integer")
        else:
            kinds.append("string")
    return kinds


def stage(scan: ImageScan, target: Path, labels: Sequence[str],
          kinds: Sequence[str]) -> Tuple[int, List[Tuple[str, str]]]:
    """Writes the TFRecord (an unchanged one keeps its file, so the cache holds); returns (images
    written, files skipped because they do not decode)."""
    import tensorflow as tf

    from core.files import write_if_changed
    from serving.codec.examples import encode

    skipped = []
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with tf.io.TFRecordWriter(str(partial)) as writer:
        for item in scan.items:
            try:
                data = _encoded(item)
            except ImageError as e:
                skipped.append((item.relative, str(e).split(": ", 1)[-1]))
                continue
            record = {IMAGE_FEATURE: data, FILE_FEATURE: item.relative}
            record.update({label: label_value(value, kind) for label, value, kind in zip(labels, item.labels, kinds)})
            writer.write(encode(record))
            written += 1
    try:
        write_if_changed(target, partial.read_bytes())
    finally:
        partial.unlink(missing_ok=True)
    if written < 2 * MIN_CLASS_IMAGES:
        raise InputDataError(f"{target}: only {written} image(s) decode; nothing to train on")
    return written, skipped


def describe_skipped(skipped: Sequence[Tuple[str, str]], limit: int = 8) -> List[str]:
    lines = [f"skipped: {name} ({why})" for name, why in skipped[:limit]]
    if len(skipped) > limit:
        lines.append(f"skipped: {len(skipped) - limit} more")
    return lines


def classes_line(counts: Mapping[str, int]) -> str:
    shown = ", ".join(f"{name} {count}" for name, count in list(counts.items())[:10])
    return shown + (f" (+{len(counts) - 10} more)" if len(counts) > 10 else "")
