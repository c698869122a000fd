"""Which face of a photo its label belongs to: the app's rule against the largest and the most
central face, judged by dlib's own network (the hybrid's teacher) on the held-out galleries.

    python -m bench.face_choice --out bench/results/face_choice.json

Every LFW picture of the sample and unseen galleries' 20 people each (not only the 15 the
galleries keep), chips made from MTCNN's landmarks (``scripts/build_landmarks.py``) under each
rule, dlib's descriptors with the mirror image averaged, nearest class mean over each person's
train pictures (the app's hash split), scored on the test pictures.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gslora_core.alignment import warp_to_template
from gslora_core.config import DataConfig
from gslora_core.data import split_labels
from gslora_core.dlib_resnet import DlibResNet, teacher
from pretraining.chips import RULES, chosen_face, read_landmarks

from .backbone import LFW

ROOT = Path(__file__).resolve().parents[1]


def descriptors(net: DlibResNet, chips: list[np.ndarray]) -> torch.Tensor:
    x = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2)
    with torch.no_grad():
        a = F.normalize(net(DlibResNet.normalize(x)), dim=-1)
        b = F.normalize(net(DlibResNet.normalize(x.flip(-1))), dim=-1)
    return F.normalize(a + b, dim=-1)


def score(emb: torch.Tensor, files: list[str], people: list[str]) -> tuple[int, int]:
    labels = np.array([people.index(f.split("/")[0]) for f in files])
    train, test = [], []
    for name in people:
        mine = [f for f in files if f.split("/")[0] == name]
        tr, _, te = split_labels(mine, DataConfig())
        train += [files.index(f) for f in tr]
        test += [files.index(f) for f in te]
    protos = torch.stack([emb[[i for i in train if labels[i] == c]].mean(0)
                          for c in range(len(people))])
    pred = (emb[test] @ F.normalize(protos, dim=-1).T).argmax(1).numpy()
    return int((pred == labels[test]).sum()), len(test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--landmarks", type=Path, default=Path.home() / ".cache/gslora/lfw_landmarks")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/face_choice.json")
    a = ap.parse_args()
    torch.set_num_threads(2)
    landmarks, net = read_landmarks(a.landmarks), teacher()
    holdout = json.loads((ROOT / "checkpoints/lfw_holdout.json").read_text())
    result = {}
    for group in ("sample_gallery", "unseen_gallery"):
        people = holdout[group]
        files = [f for f in sorted(landmarks) if f.split("/")[0] in people and landmarks[f]["faces"]]
        several = [f for f in files if len(landmarks[f]["faces"]) > 1]
        row = {"pictures": len(files), "several_faces": len(several)}
        for rule in RULES:
            chips = [np.asarray(warp_to_template(Image.open(LFW / f).convert("RGB"),
                                                 np.asarray(chosen_face(landmarks[f], rule)["points"]),
                                                 150, template="dlib")) for f in files]
            right, total = score(descriptors(net, chips), files, people)
            differ = sum(chosen_face(landmarks[f], rule) is not chosen_face(landmarks[f], "app")
                         for f in several)
            row[rule] = {"top1": right / total, "right": right, "test": total,
                         "faces_other_than_app_rule": differ}
        result[group] = row
        print(group, json.dumps(row))
    a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
