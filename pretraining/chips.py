"""dlib 150 px chips of every LFW picture, from the landmarks ``scripts/build_landmarks.py`` kept.

A photo may hold several faces; which one its label belongs to is a rule (``RULES``): the app's
(``alignment.pick_face``: area times closeness to the centre), the largest, or the one nearest
the centre. Chips are warped to the dlib template with ``margin`` pixels of the picture around
them, so views at other framings show the real surroundings.

Run:  python -m pretraining.chips --landmarks ~/.cache/gslora/lfw_landmarks \\
          --out ~/.cache/gslora/chips
Out:  ``chips.npy`` uint8 (N, 150 + 2m, 150 + 2m, 3) and ``index.json`` {"margin", "rule",
      "rows": [{"file", "identity", "n_faces"}]} (pictures where no face was found are left out).
"""
from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np
from PIL import Image

from gslora_core.alignment import pick_face, warp_to_template

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LFW = ROOT.parent / "shared" / "datasets" / "lfw-deepfunneled"
CHIPS, INDEX = "chips.npy", "index.json"


def read_landmarks(folder: str | Path) -> dict[str, dict]:
    """Every picture's faces, as ``build_landmarks`` wrote them: {file: {"size", "faces"}}."""
    out: dict[str, dict] = {}
    for part in sorted(glob.glob(str(Path(folder) / "part-*.json"))):
        out.update(json.loads(Path(part).read_text()))
    if not out:
        raise FileNotFoundError(f"no landmarks in {folder}: run scripts/build_landmarks.py")
    return out


def _largest(boxes: np.ndarray, width: int, height: int) -> int:
    return int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))


def _central(boxes: np.ndarray, width: int, height: int) -> int:
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return int(np.argmin(np.hypot(cx - width / 2, cy - height / 2)))


RULES = {"app": pick_face, "largest": _largest, "central": _central}


def chosen_face(entry: dict, rule: str = "app") -> dict | None:
    """The face a picture's label belongs to under ``rule``, or None when none was found."""
    faces = entry["faces"]
    if not faces:
        return None
    boxes = np.array([f["box"] for f in faces], np.float64)
    return faces[RULES[rule](boxes, *entry["size"])]


def build_chips(lfw: Path, landmarks: dict[str, dict], out: Path, margin: int = 24,
                rule: str = "app") -> int:
    """Write every picture's chip (with ``margin``) and its index; returns the chip count."""
    files = [f for f in sorted(landmarks) if chosen_face(landmarks[f], rule) is not None]
    side = 150 + 2 * margin
    out.mkdir(parents=True, exist_ok=True)
    chips = np.lib.format.open_memmap(out / CHIPS, mode="w+", dtype=np.uint8,
                                      shape=(len(files), side, side, 3))
    rows = []
    for i, f in enumerate(files):
        face = chosen_face(landmarks[f], rule)
        with Image.open(lfw / f) as img:
            chip = warp_to_template(img.convert("RGB"), np.asarray(face["points"]), 150, margin,
                                    template="dlib")
        chips[i] = np.asarray(chip, np.uint8)
        rows.append({"file": f, "identity": f.split("/")[0], "n_faces": len(landmarks[f]["faces"])})
    chips.flush()
    (out / INDEX).write_text(json.dumps({"margin": margin, "rule": rule, "rows": rows}))
    return len(files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    ap.add_argument("--landmarks", type=Path, default=Path.home() / ".cache/gslora/lfw_landmarks")
    ap.add_argument("--out", type=Path, default=Path.home() / ".cache/gslora/chips")
    ap.add_argument("--margin", type=int, default=24)
    ap.add_argument("--rule", choices=sorted(RULES), default="app")
    a = ap.parse_args()
    n = build_chips(a.lfw, read_landmarks(a.landmarks), a.out, a.margin, a.rule)
    print(f"{n} chips -> {a.out}")


if __name__ == "__main__":
    main()
