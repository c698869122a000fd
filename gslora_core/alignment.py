"""Face detection (MTCNN) and 5-point similarity alignment to a recognizer's face template.

Why: MTCNN alone only crops and resizes; a recognizer trained on aligned faces (eyes, nose and
mouth at fixed pixels) learns identity instead of pose and framing. A similarity transform
(rotation + uniform scale + translation) keeps the face's proportions intact. Two templates:
ArcFace's 112x112 crop (the pixel-distilled ViT) and dlib's 150x150 chip (the hybrid backbone,
whose trunk is dlib's network).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageOps

# Standard ArcFace template for 112x112 crops: left eye, right eye, nose tip, mouth left, mouth right.
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
# Where MTCNN's five points fall on dlib's 150x150 face chip (``get_face_chip``, padding 0.25):
# the mean over 1,002 LFW training faces of MTCNN's points mapped by dlib's own chip transform
# (its 5-point shape predictor in the same face box). dlib's descriptors of these chips are
# within cosine 0.996 (median; 5th percentile 0.987) of its descriptors of its own chips on the
# 292 validation faces (docs/backbone.md).
TEMPLATE_DLIB_150 = np.array([[47.55, 45.98], [102.81, 45.88], [74.85, 78.55],
                              [50.70, 107.13], [99.35, 107.14]], dtype=np.float64)
# A template's points and the side of the chip they are given for.
TEMPLATES = {"arcface": (TEMPLATE_112, 112), "dlib": (TEMPLATE_DLIB_150, 150)}
SMALL_SIDE = 160  # pictures up to this size may already be tight face crops


@dataclass
class AlignResult:
    """One picture's outcome; ``box`` is the chosen face's (x1, y1, x2, y2) in the input image."""

    crop: Image.Image | None
    method: str  # "mtcnn" | "as-is" | "none"
    n_faces: int
    note: str | None
    box: list[float] | None
    points: list[list[float]] | None = None  # the chosen face's 5 landmarks (input pixels)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (Umeyama 1991) mapping src (N,2) onto dst (N,2).

    Returns a 2x3 matrix M with dst ~ M[:, :2] @ p + M[:, 2]. Closed form, so no iterations and
    no dependence on OpenCV.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)                      # cross-covariance (2x2)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])  # no reflection
    rot = u @ fix @ vt
    scale = np.trace(np.diag(sig) @ fix) / s0.var(0).sum()
    trans = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, trans[:, None]])


def warp_to_template(img: Image.Image, landmarks: np.ndarray, size: int = 112,
                     margin: int = 0, template: str = "arcface") -> Image.Image:
    """Warp ``img`` so its 5 landmarks land on ``template`` (``TEMPLATES``), scaled to ``size``.

    ``margin`` > 0 keeps that many extra pixels of context on every side (output
    ``size + 2 * margin``, the standard crop at its centre): pretraining crops it at other
    scales and offsets without inventing the picture's surroundings."""
    points, side = TEMPLATES[template]
    m = umeyama(landmarks, points * (size / side) + margin)
    size = size + 2 * margin
    a_inv = np.linalg.inv(m[:, :2])
    # PIL asks, for each output pixel, where to sample in the input. Landmarks and template use
    # "integer = pixel centre" coordinates while PIL uses "i + 0.5 = pixel centre", hence the
    # half-pixel shifts on both sides: x_in = A^-1 (x_out - 0.5 - t) + 0.5.
    t_inv = -a_inv @ (m[:, 2] + 0.5) + 0.5
    data = (a_inv[0, 0], a_inv[0, 1], t_inv[0], a_inv[1, 0], a_inv[1, 1], t_inv[1])
    return img.transform((size, size), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)


def pick_face(boxes: np.ndarray, width: int, height: int) -> int:
    """Index of the face maximising area x closeness to the image centre (the likely subject)."""
    b = np.asarray(boxes, np.float64)
    area = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    centre = np.stack([(b[:, 0] + b[:, 2]) / 2 - width / 2, (b[:, 1] + b[:, 3]) / 2 - height / 2], 1)
    closeness = 1.0 - np.linalg.norm(centre, axis=1) / np.hypot(width / 2, height / 2)
    return int(np.argmax(area * closeness.clip(1e-3)))


class FaceAligner:
    """MTCNN detection + similarity alignment to ``template`` (``TEMPLATES``) at ``size`` pixels
    (default: the template's own); the detector is built on first use (slow import)."""

    def __init__(self, size: int = 0, device: str = "cpu", min_face_size: int = 20,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7), batch_size: int = 16,
                 template: str = "arcface") -> None:
        if template not in TEMPLATES:
            raise ValueError(f"unknown face template {template!r} (choose {', '.join(TEMPLATES)})")
        self.template = template
        self.size = size or TEMPLATES[template][1]
        self.device = device
        self.min_face_size = min_face_size
        self.thresholds = list(thresholds)
        self.batch_size = batch_size
        self._mtcnn = None
        self._lock = threading.Lock()  # one detector serves every visitor: one batch at a time

    @property
    def mtcnn(self):
        if self._mtcnn is None:
            from facenet_pytorch import MTCNN
            self._mtcnn = MTCNN(keep_all=True, device=self.device, min_face_size=self.min_face_size,
                                thresholds=self.thresholds, select_largest=False)
        return self._mtcnn

    def align(self, img: Image.Image) -> AlignResult:
        """Align the main face of one picture (see ``align_many`` for batches)."""
        return self.align_many([img])[0]

    def align_many(self, images: Sequence[Image.Image],
                   on_done: Callable[[int], None] | None = None) -> list[AlignResult]:
        """Align many pictures; same-size pictures go through MTCNN together (faster on CPU).
        ``on_done(k)`` is told after every batch how many pictures are aligned so far (a
        900-picture upload takes minutes on a CPU: the page shows it moving)."""
        rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
        out: list[AlignResult | None] = [None] * len(rgb)
        groups: dict[tuple[int, int], list[int]] = {}
        done = 0
        for i, im in enumerate(rgb):
            groups.setdefault(im.size, []).append(i)
        for (w, h), idx in groups.items():
            # Tight crops give MTCNN no context: it misses them or misplaces landmarks by ~10 px.
            # A grey border around small pictures fixes that (median eye error ~2.5 px).
            pad = max(w, h) // 2 if max(w, h) <= SMALL_SIDE else 0
            for k in range(0, len(idx), self.batch_size):
                chunk = idx[k:k + self.batch_size]
                batch = [ImageOps.expand(rgb[i], pad, fill=(128, 128, 128)) if pad else rgb[i]
                         for i in chunk]
                with self._lock:
                    boxes, _, points = self.mtcnn.detect(batch, landmarks=True)
                for j, i in enumerate(chunk):
                    b = None if boxes[j] is None else np.asarray(boxes[j], np.float64) - pad
                    p = None if points[j] is None else np.asarray(points[j], np.float64) - pad
                    out[i] = self._result(rgb[i], b, p)
                done += len(chunk)
                if on_done:
                    on_done(done)
        return out  # type: ignore[return-value]

    def _result(self, img: Image.Image, boxes: np.ndarray | None,
                points: np.ndarray | None) -> AlignResult:
        if boxes is None or len(boxes) == 0:
            w, h = img.size
            if 0.8 <= w / h <= 1.25 and max(w, h) <= SMALL_SIDE:
                # Already a tight face crop (MTCNN needs context around a face to find it).
                return AlignResult(img.resize((self.size, self.size), Image.Resampling.BILINEAR),
                                   "as-is", 0, "no face found; small square image used as-is", None)
            return AlignResult(None, "none", 0, "no face found", None)
        k = pick_face(boxes, *img.size)
        note = f"{len(boxes)} faces found; used the largest/most central" if len(boxes) > 1 else None
        crop = warp_to_template(img, points[k], self.size, template=self.template)
        return AlignResult(crop, "mtcnn", len(boxes), note, [float(v) for v in boxes[k]],
                           np.asarray(points[k], np.float64).tolist())


_SHARED: dict[str, FaceAligner] = {}
_SHARED_LOCK = threading.Lock()


def shared_aligner(template: str = "arcface") -> FaceAligner:
    """The process's one aligner for ``template`` (default settings). Building MTCNN costs
    ~0.5 s and its weights ~2 MB; a classroom trying photos and uploading galleries would
    otherwise build one per request."""
    with _SHARED_LOCK:
        if template not in _SHARED:
            _SHARED[template] = FaceAligner(template=template)
        return _SHARED[template]

