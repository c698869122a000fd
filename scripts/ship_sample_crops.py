"""Ship the sample gallery's aligned crops beside it (``assets/sample_gallery_crops/``).

The page's sample then loads without MTCNN (no alignment on a fresh clone, on any core count)
and always gives the very crops its recognizer's kept states were measured on, so those fit
(``data.shipped_crops``). Run after the sample recognizer is enrolled (``scripts/
ship_backbone.sh`` does, with the cache its enrolment aligned into):

    GSLORA_CACHE=<that cache> python scripts/ship_sample_crops.py

It refuses if a picture has no crop there, and checks that the shipped states fit the crops.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gslora_core.config import project_path  # noqa: E402
from gslora_core.data import CropCache, default_cache_dir, load_gallery_for, shipped_crops  # noqa: E402
from gslora_core.evaluation import kept_snapshot  # noqa: E402
from gslora_core.ingest import collect, decode_all  # noqa: E402
from gslora_core.model import load_recognizer  # noqa: E402
from gslora_core.states import states_path  # noqa: E402

SAMPLE = project_path("assets/sample_gallery")
WEIGHTS = project_path("checkpoints/sample_recognizer.safetensors")


class NoAligning:
    """Stands in for MTCNN: the shipped crops must serve every picture."""

    def align_many(self, images, on_done=None):
        raise RuntimeError("a sample picture has no shipped crop")


def main() -> int:
    model = load_recognizer(WEIGHTS)
    template = model.cfg.face_template
    files, _ = collect(SAMPLE)
    pictures, _ = decode_all(files)
    source = CropCache(default_cache_dir(), template, shipped_crops(SAMPLE))
    out = SAMPLE.with_name(SAMPLE.name + "_crops")
    fresh = out.with_name(out.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    target = CropCache(fresh, template)
    for pic in pictures:
        entry = source.get(pic.digest)
        if entry is None:
            print(f"{pic.label}: no crop in {default_cache_dir()}: align the sample first "
                  "(enroll it with GSLORA_CACHE set)", file=sys.stderr)
            return 1
        target.put(pic.digest, entry.get("crop"), entry["method"], entry.get("note"),
                   entry.get("n_faces", 1))
    shutil.rmtree(out, ignore_errors=True)
    fresh.rename(out)
    gallery = load_gallery_for(model, SAMPLE, cache_dir=None, aligner=NoAligning())
    if kept_snapshot(states_path(WEIGHTS), model, gallery) is None:
        print("the sample recognizer's kept states do not fit these crops", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"shipped {len(pictures)} crops in {out.relative_to(ROOT)} ({size / 2**20:.1f} MB); "
          "the kept states fit them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
