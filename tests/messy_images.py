"""Image folders as users have them, written by the tests from what installed packages ship
(scikit-learn's two sample photos): mixed formats, sizes and colour modes, and the debris real
folders hold (a truncated JPEG, a text file, an empty class, a class of one image)."""
import csv
import io
import random
from pathlib import Path
from typing import Dict, List, Tuple

# class -> (photo, region (left, top, right, bottom)): what a patch there shows
REGIONS = {"sky": ("china.jpg", (380, 0, 640, 150)),
           "roof": ("china.jpg", (135, 60, 325, 390)),
           "petal": ("flower.jpg", (205, 110, 420, 320))}


def _photos():
    from PIL import Image
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    return {Path(name).name: Image.fromarray(array) for name, array in zip(data.filenames, data.images)}


def _patch(photos, label: str, rng: random.Random):
    photo, (left, top, right, bottom) = REGIONS[label]
    width, height = rng.randint(30, 90), rng.randint(30, 90)
    width, height = min(width, right - left), min(height, bottom - top)
    x, y = rng.randint(left, right - width), rng.randint(top, bottom - height)
    return photos[photo].crop((x, y, x + width, y + height))


def _save(image, path: Path, index: int) -> Path:
    """Cycles through JPEG, PNG, RGBA PNG, grayscale-ish palette GIF and BMP (by index)."""
    kind = index % 5
    if kind == 0:
        path = path.with_suffix(".jpg")
        image.save(path, quality=88)
    elif kind == 1:
        path = path.with_suffix(".png")
        image.save(path)
    elif kind == 2:
        path = path.with_suffix(".png")
        rgba = image.convert("RGBA")
        rgba.putalpha(200)
        rgba.save(path)
    elif kind == 3:
        path = path.with_suffix(".gif")
        image.convert("P", palette=1, colors=128).save(path)  # 1 = Image.Palette.ADAPTIVE
    else:
        path = path.with_suffix(".bmp")
        image.save(path)
    return path


def photo_folder(root: Path, per_class: int = 40, seed: int = 3) -> Tuple[Path, Dict[str, List[str]]]:
    """``root/<class>/...`` with nested sub-folders, every format, a grayscale JPEG per class, and
    debris. Returns (root, what must be skipped: {"corrupt": [...], "not_image": [...], "classes": [...]})."""
    rng = random.Random(seed)
    photos = _photos()
    for label in REGIONS:
        for i in range(per_class):
            folder = root / label / ("batch2" if i % 4 == 3 else "")
            folder.mkdir(parents=True, exist_ok=True)
            _save(_patch(photos, label, rng), folder / f"{label}_{i:03d}", i)
        _patch(photos, label, rng).convert("L").save(root / label / f"{label}_gray.jpg", quality=90)
    good = (root / "sky" / "sky_000.jpg").read_bytes()
    (root / "sky" / "broken.jpg").write_bytes(good[: len(good) // 3])  # truncated mid-scan
    (root / "roof" / "notes.txt").write_text("shot on a phone\n")
    (root / "roof" / "fake.png").write_bytes(b"this is not a PNG")
    (root / "empty").mkdir(exist_ok=True)
    (root / "lonely").mkdir(exist_ok=True)
    _patch(photos, "sky", rng).save(root / "lonely" / "one.jpg")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return root, {"corrupt": ["sky/broken.jpg", "roof/fake.png"], "not_image": ["roof/notes.txt"],
                  "classes": ["empty/", "lonely/"]}


def labels_csv(folder: Path, path: Path) -> Path:
    """A CSV of image paths (relative to the CSV) and a label column named as users name them."""
    rows = []
    for label in sorted(REGIONS):
        for image in sorted((folder / label).rglob("*")):
            if image.is_file():
                rows.append((image.relative_to(path.parent).as_posix(), label.upper()))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["File Path", "What It Shows"])
        writer.writerows(rows)
    return path


def jpeg_bytes(image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=92)
    return out.getvalue()


def fresh_patches(count: int = 6, seed: int = 99):
    """(label, JPEG bytes) of patches no run has seen."""
    rng = random.Random(seed)
    photos = _photos()
    labels = sorted(REGIONS)
    return [(labels[i % len(labels)], jpeg_bytes(_patch(photos, labels[i % len(labels)], rng))) for i in range(count)]
