"""Face detection + 5-point alignment (gslora_core.alignment): a few LFW pictures, a few seconds."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from gslora_core.alignment import TEMPLATE_112, TEMPLATES, FaceAligner, pick_face, umeyama, warp_to_template

ROOT = Path(__file__).resolve().parents[1]
LFW = Path(os.environ.get("GSLORA_LFW", ROOT.parent / "shared" / "datasets" / "lfw-deepfunneled"))
FILES = ["Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Colin_Powell/Colin_Powell_0001.jpg",
         "Tony_Blair/Tony_Blair_0001.jpg", "Hugo_Chavez/Hugo_Chavez_0001.jpg"]


def lfw(i: int) -> Image.Image:
    if not LFW.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"LFW not found at {LFW}")
        pytest.skip(f"LFW not found at {LFW}")
    return Image.open(LFW / FILES[i]).convert("RGB")


@pytest.fixture(scope="module")
def aligner() -> FaceAligner:
    return FaceAligner()


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    for _ in range(5):
        s, a = rng.uniform(0.3, 3.0), rng.uniform(-math.pi, math.pi)
        m = np.array([[s * math.cos(a), -s * math.sin(a), rng.uniform(-50, 50)],
                      [s * math.sin(a), s * math.cos(a), rng.uniform(-50, 50)]])
        src = rng.uniform(0, 250, (5, 2))
        dst = src @ m[:, :2].T + m[:, 2]
        np.testing.assert_allclose(umeyama(src, dst), m, atol=1e-6)


def test_pick_face_prefers_large_and_central():
    boxes = np.array([[0, 0, 40, 40], [80, 80, 160, 160], [190, 190, 240, 240]], float)
    assert pick_face(boxes, 240, 240) == 1


@pytest.mark.slow
def test_aligned_crops_put_the_eyes_on_the_template(aligner):
    results = aligner.align_many([lfw(i) for i in range(len(FILES))])
    assert all(r.method == "mtcnn" and r.box is not None for r in results)
    crops = [r.crop for r in results]
    assert all(c.size == (112, 112) and c.mode == "RGB" for c in crops)
    # Re-detect on the crops (with a border: MTCNN needs context) and measure the eyes.
    pad = 56
    _, _, points = aligner.mtcnn.detect([ImageOps.expand(c, pad, fill=(128,) * 3) for c in crops],
                                        landmarks=True)
    errors = [np.linalg.norm(np.asarray(p[0], float)[:2] - pad - TEMPLATE_112[:2], axis=1).max()
              for p in points]
    assert np.median(errors) < 4.0, errors
    assert max(errors) < 8.0, errors


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_a_warp_puts_the_landmarks_on_its_template(template):
    # A picture whose five points are known: a similarity of the template itself.
    points, side = TEMPLATES[template]
    src = points * 1.7 + np.array([31.0, 12.0])
    img = Image.new("RGB", (400, 400), (0, 0, 0))
    for x, y in src:  # a white dot at each point
        img.paste((255, 255, 255), (int(round(x)) - 1, int(round(y)) - 1,
                                    int(round(x)) + 2, int(round(y)) + 2))
    chip = np.asarray(warp_to_template(img, src, side, template=template)).sum(2)
    assert chip.shape == (side, side)
    for x, y in points:
        assert chip[int(round(y)), int(round(x))] > 0


def test_the_dlib_aligner_makes_dlibs_150_px_chip():
    assert FaceAligner(template="dlib").size == 150 and FaceAligner().size == 112
    with pytest.raises(ValueError, match="unknown face template"):
        FaceAligner(template="mystery")


@pytest.mark.slow
def test_an_already_aligned_crop_is_accepted(aligner):
    crop = aligner.align(lfw(0)).crop
    again = aligner.align(crop)
    assert again.method in ("as-is", "mtcnn")
    assert again.crop.size == (112, 112)


def test_a_blank_picture_has_no_face(aligner):
    r = aligner.align(Image.new("RGB", (250, 250), (128, 128, 128)))
    assert r.crop is None and r.method == "none" and "no face" in r.note


@pytest.mark.slow
def test_two_faces_pick_the_larger_and_say_so(aligner):
    faces = []
    for i in (1, 2):  # cut each face out, so LFW's background faces do not interfere
        img = lfw(i)
        x1, y1, x2, y2 = aligner.align(img).box
        cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, 0.8 * max(x2 - x1, y2 - y1)
        faces.append(img.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half))))
    canvas = Image.new("RGB", (360, 220), (128, 128, 128))
    canvas.paste(faces[0].resize((100, 100)), (10, 60))      # small, left
    canvas.paste(faces[1].resize((200, 200)), (150, 10))     # large, right
    r = aligner.align(canvas)
    assert r.method == "mtcnn" and r.n_faces == 2
    assert "2 faces found" in r.note
    assert (r.box[0] + r.box[2]) / 2 > 150


def test_a_bench_gallery_crop_is_its_pictures_own():
    """Crops of the benchmarks' galleries (``bench.galleries.built``) do not depend on the
    caller's torch thread count or on the pictures aligned beside them: a plain batch moves
    landmarks by ~1e-5 px with either, and about half the crops by a grey level."""
    import torch

    from bench.galleries import built

    pictures = [lfw(i) for i in range(len(FILES))]
    before = torch.get_num_threads()
    runs = []
    try:
        for threads, which in ((1, [0, 1, 2, 3]), (3, [3, 2, 1, 0]), (2, [1])):
            torch.set_num_threads(threads)
            with built("dlib") as kw:
                res = kw["aligner"].align_many([pictures[i] for i in which])
            runs.append({i: np.asarray(r.crop) for i, r in zip(which, res)})
    finally:
        torch.set_num_threads(before)
    for run in runs[1:]:
        for i, crop in run.items():
            assert np.array_equal(crop, runs[0][i]), FILES[i]
