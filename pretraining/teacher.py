"""A pretrained face-embedding teacher (dlib ResNet, 128-d) for distillation at pretraining time.

Why: no pretrained torch face model can be fetched offline here, while dlib's model ships on PyPI
(``dlib-bin`` + ``face-recognition-models``) and reaches ~97-98 % on LFW pairs. It is not a torch
model, so it only provides targets; the app and the engine never need it, hence the separate
pretraining/requirements.txt and the lazy imports.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

MISSING = ("the dlib teacher needs packages from pretraining/requirements.txt: "
           "pip install -r pretraining/requirements.txt")


def model_dir() -> Path:
    """Folder of face_recognition_models' .dat files (its own import needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(MISSING)
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibTeacher:
    """128-d dlib embeddings of one face, located by a box from the MTCNN aligner.

    The face is given by a box (x1, y1, x2, y2), so dlib's slow detector is never run; dlib's
    5-point shape predictor finds the landmarks inside it and dlib aligns its own 150x150 chip.
    """

    def __init__(self, num_jitters: int = 0) -> None:
        try:
            import dlib
        except ImportError as e:
            raise ImportError(MISSING) from e
        d = model_dir()
        self._dlib = dlib
        self.num_jitters = num_jitters
        self.shape_predictor = dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat"))
        self.encoder = dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat"))

    def embed(self, img: Image.Image, box: list[float] | None = None) -> np.ndarray | None:
        """Unit-ish 128-d float32 descriptor (compare with euclidean distance, ~0.6 = same
        person), or None where dlib fails. ``box=None`` uses the whole image as the face."""
        arr = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
        h, w = arr.shape[:2]
        x1, y1, x2, y2 = box if box is not None else (0, 0, w - 1, h - 1)
        rect = self._dlib.rectangle(int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2)))
        try:
            shape = self.shape_predictor(arr, rect)
            vec = self.encoder.compute_face_descriptor(arr, shape, self.num_jitters)
        except RuntimeError:
            return None
        out = np.asarray(vec, dtype=np.float32)
        return out if out.shape == (128,) and np.isfinite(out).all() else None

    def embed_aligned(self, arr: np.ndarray, inner: float = 1.0) -> np.ndarray | None:
        """Descriptor of an already aligned face: uint8 (H, W, 3) whose central ``inner`` share
        of the side is the 112x112 aligned crop (the face cache's wide crops: 112 / 160).

        Why: pretraining's mixed faces exist only as aligned crops, not as photos; the box of
        the aligned crop stands in for the detector's box."""
        h, w = arr.shape[:2]
        m = (1.0 - inner) / 2
        box = [m * w, m * h, (1 - m) * w - 1, (1 - m) * h - 1]
        return self.embed(Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)), box)
