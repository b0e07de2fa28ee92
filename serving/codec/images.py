"""Images on the host side (Pillow and NumPy, no TensorFlow): what an image model takes, and the
decoding and resizing that the served graph does, done the same way where there is no graph (the
edge device, a client, the staging of a folder).

The graph (``components.image_layers``) decodes any JPEG/PNG/GIF/BMP, converts it to RGB, resizes it to
``size`` x ``size`` with TF's antialiased bilinear filter and scales it for the model. Pillow's
bilinear resize is the same triangle filter, so host and graph agree to a grey level or two.
"""
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from serving.codec.model_extras import read_extra, write_extra

IMAGE_FILE = "mlops_image.json"  # in the SavedModel's assets.extra/ (TF Serving ignores it)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
IMAGE_FEATURE, FILE_FEATURE = "image", "file"  # the staged tf.Example's encoded bytes and relative path
PIXELS_SIGNATURE = "serving_pixels"  # decoded [batch, size, size, 3] float pixels, 0-255
CHANNELS = 3


class ImageError(ValueError):
    """A file that is not an image this project can read; the message names it."""


@dataclass(frozen=True)
class ImageInfo:
    """What an image model takes: the feature holding encoded bytes, the side it resizes to, and how
    the 0-255 RGB pixels are scaled for the model (``pixels * scale + offset``, inside the graph)."""
    feature: str = IMAGE_FEATURE
    size: int = 32
    channels: int = CHANNELS
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    resize: str = "bilinear, antialiased, to size x size (aspect ratio not kept)"
    class_names: Tuple[str, ...] = ()  # the first label's classes, in the model's output order

    def as_json(self) -> dict:
        document = asdict(self)
        document["class_names"] = list(self.class_names)
        return document


def write_image_info(model_dir: str, info: ImageInfo) -> Path:
    return write_extra(model_dir, IMAGE_FILE, info.as_json())


def read_image_info(model_dir: Union[str, Path]) -> Optional[ImageInfo]:
    """The model's image input, or None for a model that takes no image."""
    document = read_extra(model_dir, IMAGE_FILE)
    return None if document is None else parse_image_info(document)


def parse_image_info(document: Optional[Mapping[str, Any]]) -> Optional[ImageInfo]:
    if not document:
        return None
    known = set(ImageInfo.__dataclass_fields__)
    values = {k: v for k, v in document.items() if k in known}
    values["class_names"] = tuple(values.get("class_names", ()))
    return ImageInfo(**values)


def is_image_name(path: Union[str, Path]) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def open_rgb(data: bytes, name: str = "image") -> Any:
    """A Pillow image in RGB (grayscale, palette, RGBA and CMYK converted; an animation's first
    frame), fully decoded so that a truncated file fails here."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.seek(0)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: not a readable image ({type(e).__name__}: {str(e)[:80]})") from None
    # TF's decoders drop alpha without compositing, as Pillow's conversion does
    return image.convert("RGB") if image.mode != "RGB" else image


def resize_pixels(image: Any, size: int) -> np.ndarray:
    """[size, size, 3] float32 pixels 0-255 of an RGB Pillow image, as the graph resizes it."""
    from PIL import Image

    if image.size == (size, size):
        return np.asarray(image, dtype=np.float32)
    array = np.asarray(image, dtype=np.float32)
    channels = [Image.fromarray(array[..., c], mode="F").resize((size, size), Image.BILINEAR)
                for c in range(array.shape[-1])]
    return np.stack([np.asarray(c, dtype=np.float32) for c in channels], axis=-1)


def load_pixels(source: Union[str, Path, bytes], size: int) -> np.ndarray:
    """An image file (or its bytes) -> [size, size, 3] float32 pixels 0-255."""
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), "image"
    else:
        path = Path(source)
        if not path.exists():
            raise ImageError(f"{path}: no such file")
        data, name = path.read_bytes(), str(path)
    return resize_pixels(open_rgb(data, name), size)


def load_batch(paths: Sequence[Union[str, Path]], size: int) -> np.ndarray:
    return np.stack([load_pixels(p, size) for p in paths]) if paths else np.zeros((0, size, size, CHANNELS), np.float32)
