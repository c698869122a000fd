"""Who is in this photo? Top-k identities for one picture, as the recognizer sees it.

The photo goes through the same path as a gallery picture (decode with every format rule, MTCNN
alignment, the recognizer's image size), so "try a photo" measures what forgetting measures."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from .config import IngestConfig
from .data import crop_faces, to_tensor
from .ingest import RawFile, decode
from .model import Recognizer
from .openset import UNKNOWN


def read_photo(path: str | Path, ingest: IngestConfig = IngestConfig()):
    """Decode one photo with the gallery's rules; raises ValueError with the reason if unusable."""
    path = Path(path)
    raw = RawFile("photo", path.name, path.read_bytes, path.stat().st_size)
    picture, reason = decode(raw, ingest)
    if picture is None:
        raise ValueError(f"{path.name}: {reason}")
    return picture


@torch.no_grad()
def top_k(model: Recognizer, path: str | Path, k: int = 5, cache_dir: str | Path | None = None,
          aligner=None) -> dict:
    """{"face": how it was found, "note", "top": [{"identity", "cosine"}] best first,
    "answer": the open-set verdict (``verdict``), "crop"}."""
    picture = read_photo(path)
    kept, rejected, notes = crop_faces([picture], model.data_config, model.cfg.img_size,
                                       cache_dir, aligner, template=model.cfg.face_template)
    if not kept:
        raise ValueError(f"{Path(path).name}: {rejected[0][1]}")
    _, crop, method = kept[0]
    top = top_k_crop(model, crop, k)
    return {"face": method, "note": "; ".join(n for _, n in notes) or None,
            "top": top, "answer": verdict(model, top), "crop": crop}


def verdict(model: Recognizer, top: list[dict]) -> dict:
    """The open-set answer for a top-k list: the best name if its cosine clears the
    recognizer's threshold, else "not recognized" (the name is given only when it does).
    A recognizer without a threshold (a backbone) answers the best name, and says so."""
    best = top[0]
    tau = model.threshold.tau if model.threshold else None
    known = tau is None or best["cosine"] >= tau
    return {"identity": best["identity"] if known else UNKNOWN, "recognized": known,
            "cosine": best["cosine"], "threshold": tau}


@torch.no_grad()
def top_k_crop(model: Recognizer, crop: Image.Image | torch.Tensor, k: int = 5) -> list[dict]:
    """[{"identity", "cosine"}] best first, for an aligned face crop (PIL or uint8 (3, S, S))."""
    x = to_tensor(crop) if isinstance(crop, Image.Image) else crop
    model.eval()
    emb = model.embed_flip(x.unsqueeze(0).to(model.device))
    cos = model.head.cosine(emb)[0].cpu()
    order = torch.argsort(cos, descending=True)[:k].tolist()
    return [{"identity": model.class_names[i], "cosine": float(cos[i])} for i in order]
