"""What the page's own objects sample gives (issue 48): forget each of its 10 CIFAR-10 classes
once with the default recipe, from the sample's loaded state (each task rolled back before the
next), and score the 13 held-back pictures a class the page shows. The README's objects line
quotes CIFAR-10's larger test split (bench/objects.py); this is what a visitor sees.

    python -m bench.objects_sample --out bench/results/        # ~1 min on 2 cores
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from gslora_core.config import PRESETS, StudioConfig

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--gallery", default="", help="another objects folder in the sample's "
                    "place (e.g. validation pictures: python -m bench.cifar10 --part train)")
    ap.add_argument("--label", default="", help="names the result file")
    a = ap.parse_args(argv)
    from demo.workspace import Workspace

    cfg = StudioConfig(sessions_root=tempfile.mkdtemp())
    if a.gallery:
        cfg = replace(cfg, objects_gallery=a.gallery)
    ws = Workspace(cfg)
    rows = []
    try:
        ws.load_sample(kind="objects")
        for name in list(ws.gallery.names):
            job = ws.start_forget([name], PRESETS["fast"])
            job.wait()
            if job.error:
                raise RuntimeError(job.error)
            r = job.result
            f = r["open_set"]["forgotten"]["after"]
            rows.append({"class": name, "acc_f_before": r["acc_f_before"],
                         "acc_f_after": r["acc_f_after"], "acc_r_before": r["acc_r_before"],
                         "acc_r_after": r["acc_r_after"], "held_back": f["pictures"],
                         "not_recognized": f["unknown"], "another_class": f["other"],
                         "blocks": r["blocks_used"], "stop": r["stop"]["text"],
                         "seconds": r["seconds"]})
            print(f"{name:10s} Acc_f {100 * r['acc_f_before']:.1f} -> {100 * r['acc_f_after']:.1f} %"
                  f" of {f['pictures']}, {r['seconds']:.1f} s", flush=True)
            ws.rollback()
    finally:
        ws.close()
    res = {"meta": {"date": time.strftime("%Y-%m-%d"), "recipe": "default",
                    "gallery": a.gallery or cfg.objects_gallery,
                    "command": "python -m bench.objects_sample " + " ".join(argv or sys.argv[1:])},
           "rows": rows}
    out = Path(a.out) / f"objects_page_sample{'_' + a.label if a.label else ''}.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()
