"""Portrait loading: image files, PIL images and arrays -> an upright, opaque RGB ``Portrait``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch

from talkingface.io._common import check_file
from talkingface.pipeline.contracts import Portrait
from talkingface.pipeline.errors import InputError

MIN_IMAGE_SIDE = 64
"""Smallest accepted portrait side in pixels: below this no face analysis can work."""

def load_image(src: str | Path | np.ndarray | torch.Tensor | PIL.Image.Image) -> Portrait:
    """Load a portrait as RGB uint8 ``[H, W, 3]``.

    Files: anything Pillow reads (jpg, png, webp, bmp, ...); EXIF orientation is applied,
    transparency is composited on white, grayscale and palette images become RGB.
    Arrays and tensors: uint8 (0..255) or float (0..1), ``[H, W]``, ``[H, W, 3]`` or
    ``[H, W, 4]``; channels-first ``[3, H, W]`` (or ``[1|4, H, W]``) is accepted too.

    Raises:
        InputError: missing file, a directory, not an image, an empty array, or a side
            shorter than ``MIN_IMAGE_SIDE`` pixels.
    """
    if isinstance(src, (str, Path)):
        path = Path(src)
        check_file(path, "image")
        try:
            with PIL.Image.open(path) as img:
                img.load()
                pixels = _pil_to_rgb(img)
        except InputError:
            raise
        except (PIL.UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise InputError(
                f"cannot read {path} as an image (jpg, png, webp): {exc}; "
                "give a portrait photo in one of these formats"
            ) from exc
        source = str(path)
    elif isinstance(src, PIL.Image.Image):
        pixels, source = _pil_to_rgb(src), "<PIL.Image>"
    elif isinstance(src, (np.ndarray, torch.Tensor)):
        pixels, source = _array_to_rgb(src), "<array>"
    else:
        raise InputError(
            f"cannot load a portrait from a {type(src).__name__}: give a file path, "
            "a numpy array, a torch tensor or a PIL image"
        )
    h, w = pixels.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise InputError(
            f"image {source} is {w}x{h} pixels: give a portrait at least {MIN_IMAGE_SIDE} px "
            "on each side (256 px or more works best)"
        )
    return Portrait(torch.from_numpy(np.ascontiguousarray(pixels)), source)


def _pil_to_rgb(img: PIL.Image.Image) -> np.ndarray:
    """``[H, W, 3]`` uint8 from any Pillow image, upright and opaque."""
    img = PIL.ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: Pillow's convert("L") clips instead of scaling.
        gray = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or gray.max() > 255 else 255.0
        return _array_to_rgb((gray / top).astype(np.float32))
    if img.mode == "F":
        return _array_to_rgb(np.asarray(img, dtype=np.float32))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return _composite_on_white(np.asarray(img.convert("RGBA")))
    return np.array(img.convert("RGB"))  # a writable copy: torch refuses read-only memory


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """``[H, W, 4]`` uint8 -> ``[H, W, 3]`` uint8 over a white background."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return (rgb + 0.5).astype(np.uint8)


def _array_to_rgb(arr: np.ndarray | torch.Tensor) -> np.ndarray:
    """``[H, W, 3]`` uint8 from an image array of any accepted layout and dtype."""
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu()
        if arr.dtype in (torch.bfloat16, torch.float16):
            arr = arr.float()
        arr = arr.numpy()
    if arr.size == 0:
        raise InputError(f"the image array is empty (shape {tuple(arr.shape)}): give a portrait")
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise InputError(
            f"an image array must be [H, W], [H, W, 3] or [H, W, 4] (or [3, H, W]), "
            f"got shape {tuple(arr.shape)}"
        )
    if arr.dtype == np.uint8:
        u8 = arr
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError("the image array has NaN or infinite values: give finite pixels")
        if arr.min() < -1e-3 or arr.max() > 1.0 + 1e-3:
            raise InputError(
                f"a float image must be in 0..1, got values in {arr.min():.3g}..{arr.max():.3g}: "
                "divide 0..255 pixels by 255 or pass uint8"
            )
        u8 = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif arr.dtype == np.uint16:
        u8 = (arr // 257).astype(np.uint8)
    else:
        raise InputError(f"an image array must be uint8 or float (0..1), got {arr.dtype}")
    if u8.ndim == 2:
        return np.repeat(u8[..., None], 3, axis=-1)
    if u8.shape[-1] == 4:
        return _composite_on_white(u8)
    return u8
