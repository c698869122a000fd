"""Choose the LFW validation people for backbone pretraining: checkpoints/lfw_validation.json.

Why: a checkpoint chosen on the held-out test people (checkpoints/lfw_holdout.json) would make
their scores optimistic. These people are kept out of training too, and pretraining scores them
after every epoch (clean and degraded views) to choose its checkpoint; the held-out people are
only ever scored by the benchmarks, once training is done.

Choice, reproducible from the dataset alone: among identities not in the holdout, the first
``--large`` of the 10-60 picture tier and the first ``--small`` of the 2-9 tier, ordered by sha1
of "val:" + name (a different salt from the holdout's, so the tiers' first names differ).

    python scripts/make_validation_split.py            # writes checkpoints/lfw_validation.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LFW = ROOT.parent / "shared" / "datasets" / "lfw-deepfunneled"


def choose(counts: dict[str, int], excluded: set[str], large: int, small: int) -> dict[str, list[str]]:
    """{"validation_large": [...], "validation_small": [...]}, each sorted by name."""
    def order(names: list[str]) -> list[str]:
        return sorted(names, key=lambda n: hashlib.sha1(f"val:{n}".encode()).hexdigest())

    free = {n: k for n, k in counts.items() if n not in excluded}
    big = order([n for n, k in free.items() if 10 <= k <= 60])[:large]
    few = order([n for n, k in free.items() if 2 <= k <= 9])[:small]
    return {"validation_large": sorted(big), "validation_small": sorted(few)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    ap.add_argument("--holdout", type=Path, default=ROOT / "checkpoints" / "lfw_holdout.json")
    ap.add_argument("--large", type=int, default=12, help="identities with 10-60 pictures")
    ap.add_argument("--small", type=int, default=100, help="identities with 2-9 pictures")
    ap.add_argument("--out", type=Path, default=ROOT / "checkpoints" / "lfw_validation.json")
    a = ap.parse_args()
    hold = json.loads(a.holdout.read_text())
    excluded = {n for v in hold.values() if isinstance(v, list) for n in v}
    counts = {d.name: sum(1 for _ in d.glob("*.jpg")) for d in a.lfw.iterdir() if d.is_dir()}
    split = choose(counts, excluded, a.large, a.small)
    pictures = sum(counts[n] for v in split.values() for n in v)
    about = (f"LFW identities for choosing pretraining checkpoints (scripts/make_validation_split.py): "
             f"{a.large} of the 10-60 picture tier and {a.small} of the 2-9 tier, by sha1 of "
             f"'val:'+name, none in lfw_holdout.json; {pictures} pictures. Kept out of training; "
             "never the held-out test people.")
    a.out.write_text(json.dumps({"about": about, **split}, indent=1) + "\n")
    print(f"wrote {a.out}: {sum(len(v) for v in split.values())} identities, {pictures} pictures")


if __name__ == "__main__":
    main()
