"""Photo shifts: a face picture as a visitor might upload it (tight crop, greyscale, small face,
heavy JPEG, colour cast).

One definition serves two places that must agree: ``bench/robustness.py`` (the benchmark rows)
and the validation views pretraining chooses checkpoints on (``facecache.shifted_views``). Each
shift acts on the *photo*, before MTCNN and alignment, the way an upload reaches the app.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

SHIFTS = ("clean", "tight_crop", "greyscale", "face_32px", "face_48px", "jpeg_q20", "colour_cast")
CAST_GAINS = (1.3, 1.0, 0.6)  # a strong warm (tungsten-like) cast: red up, blue down
TIGHT_SIDE = 1.0  # tight crop: a square of the MTCNN box's larger side around its centre


def square_box(box: list[float], side_scale: float) -> tuple[float, float, float, float]:
    """A square around ``box``'s centre whose side is ``side_scale`` times its larger side."""
    x1, y1, x2, y2 = box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * side_scale / 2
    return cx - half, cy - half, cx + half, cy + half


def apply_shift(img: Image.Image, shift: str, box: list[float]) -> Image.Image:
    """The picture as a visitor might upload it. ``box`` is the face's MTCNN box on the clean
    picture (tight crops and small faces are defined relative to the face)."""
    if shift == "clean":
        return img
    if shift == "tight_crop":  # a tight pre-cropped 112x112 face
        return img.crop(tuple(round(v) for v in square_box(box, TIGHT_SIDE))).resize(
            (112, 112), Image.Resampling.BICUBIC)
    if shift == "greyscale":
        return img.convert("L").convert("RGB")
    if shift in ("face_32px", "face_48px"):  # the face this wide in the photo, then upscaled
        target = 32 if shift == "face_32px" else 48
        f = target / max(box[2] - box[0], 1.0)
        w, h = img.size
        small = img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BOX)
        return small.resize((w, h), Image.Resampling.BILINEAR)
    if shift == "jpeg_q20":
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=20)
        buf.seek(0)
        with Image.open(buf) as im:
            return im.convert("RGB")
    if shift == "colour_cast":
        arr = np.asarray(img, dtype=np.float32) * np.array(CAST_GAINS, dtype=np.float32)
        return Image.fromarray(arr.round().clip(0, 255).astype(np.uint8))
    raise ValueError(f"unknown shift {shift!r}: choose from {', '.join(SHIFTS)}")
