"""Gallery sources (folder, zip, loose files) -> decoded RGB pictures, each bad file with a reason.

Nothing here trusts a file name as a path: zip members and uploads are read as bytes under a
cleaned ``identity/file`` label, and every limit is checked before the expensive step it guards
(sizes before reading, pixel counts before decoding).
"""
from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import IngestConfig

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".pgm", ".ppm", ".pnm", ".pbm", ".gif",
              ".tif", ".tiff"}
MB = 1024 * 1024


@dataclass
class RawFile:
    """One candidate picture: its identity, a display label ``identity/file`` and its bytes."""

    identity: str
    label: str
    read: Callable[[], bytes]
    size: int  # bytes as stored (compressed size for zip members)


@dataclass
class Picture:
    """A decoded picture ready for face cropping."""

    identity: str
    label: str
    image: Image.Image
    digest: str  # sha1 of the file's bytes: duplicate check and alignment cache key
    note: str | None = None


Rejection = tuple[str, str]  # (label, reason)


def clean_identity(name: str) -> str:
    """A display-safe identity name: Unicode kept (non-Latin names are fine), no path parts."""
    name = unicodedata.normalize("NFC", name).strip().replace("/", "_").replace("\\", "_")
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    return name.strip(" .") or "unnamed"


def identity_from_filename(name: str) -> str:
    """'Angelina_Jolie_0003.jpg' -> 'Angelina_Jolie'; 'Ana (2).png' -> 'Ana'."""
    stem = PurePosixPath(name.replace("\\", "/")).stem
    stem = re.sub(r"[\s_\-.]*(\(\d+\)|\d+)$", "", stem)
    return clean_identity(stem)


def _is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_EXTS


def from_folder(root: str | Path) -> tuple[list[RawFile], list[Rejection]]:
    """A folder with one sub-folder per identity (a single wrapping folder is looked through)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"gallery folder not found: {root}")
    subs = [p for p in sorted(root.iterdir()) if not p.name.startswith(".")]
    if len(subs) == 1 and subs[0].is_dir() and all(
            p.is_dir() for p in subs[0].iterdir() if not p.name.startswith(".")):
        root, subs = subs[0], [p for p in sorted(subs[0].iterdir()) if not p.name.startswith(".")]
    files: list[RawFile] = []
    rejected: list[Rejection] = []
    for sub in subs:
        if sub.is_symlink():
            rejected.append((sub.name, "symbolic link: skipped"))
            continue
        if not sub.is_dir():
            rejected.append((sub.name, "not inside an identity folder"))
            continue
        ident = clean_identity(sub.name)
        for p in sorted(sub.iterdir()):
            label = f"{ident}/{p.name}"
            if p.name.startswith("."):
                continue
            if p.is_symlink() or not p.is_file():
                rejected.append((label, "not a regular file"))
            elif not _is_image_name(p.name):
                rejected.append((label, f"not an image (extension {p.suffix or 'none'})"))
            else:
                files.append(RawFile(ident, label, p.read_bytes, p.stat().st_size))
    return files, rejected


def _zip_parts(name: str) -> list[str] | None:
    """Member name -> path parts, or None when it is absolute or climbs out ('..')."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return None if ".." in parts else parts


def _zip_members(zf: zipfile.ZipFile) -> tuple[list[tuple[list[str], zipfile.ZipInfo]],
                                                list[Rejection]]:
    """The zip's files with their path parts; unsafe names, empty names and links refused,
    folders and hidden or macOS side files passed over."""
    rejected: list[Rejection] = []
    members: list[tuple[list[str], zipfile.ZipInfo]] = []
    for info in zf.infolist():
        if info.is_dir():
            continue
        parts = _zip_parts(info.filename)
        if parts is None:
            rejected.append((info.filename, "unsafe path in zip (absolute or '..'): skipped"))
            continue
        if not parts:  # a member named "." or "/./": nothing to read
            rejected.append((info.filename, "no file name in zip: skipped"))
            continue
        if parts[0] == "__MACOSX" or parts[-1].startswith("."):
            continue
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            rejected.append((info.filename, "symbolic link in zip: skipped"))
            continue
        members.append((parts, info))
    return members, rejected


def from_zip(path: str | Path, cfg: IngestConfig = IngestConfig()) -> tuple[list[RawFile], list[Rejection]]:
    """A zip of identity folders (optionally inside one top-level folder); members are read lazily.

    Refused up front: unreadable zips and zips whose pictures would expand past ``max_zip_mb``.
    Refused per member: absolute or '..' names, links, expansion ratio past ``max_zip_ratio``."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{Path(path).name} is not a readable zip file ({e})") from None
    members, rejected = _zip_members(zf)
    total = sum(i.file_size for _, i in members if _is_image_name(i.filename))
    if total > cfg.max_zip_mb * MB:
        zf.close()
        raise ValueError(f"{Path(path).name} would expand to {total / MB:.0f} MB of pictures; "
                         f"the limit is {cfg.max_zip_mb:.0f} MB")
    # One wrapping folder (my_gallery/<identity>/<picture>) is taken off, even when a stray file
    # (a README) sits beside the identity folders: it then gets its own reason.
    tops = {p[0] for p, _ in members if len(p) > 1}
    deep = sum(len(p) >= 3 for p, _ in members)
    strip = len(tops) == 1 and deep > sum(len(p) == 2 for p, _ in members)
    files: list[RawFile] = []
    for parts, info in members:
        parts = parts[1:] if strip and len(parts) > 1 else parts
        label = "/".join(parts)
        if len(parts) < 2:
            rejected.append((label, "not inside an identity folder"))
            continue
        if len(parts) > 2:
            rejected.append((label, "nested too deep (expected identity/picture)"))
            continue
        ident = clean_identity(parts[0])
        label = f"{ident}/{parts[1]}"
        if not _is_image_name(parts[1]):
            rejected.append((label, f"not an image (extension {PurePosixPath(parts[1]).suffix or 'none'})"))
            continue
        if info.compress_size and info.file_size / info.compress_size > cfg.max_zip_ratio:
            rejected.append((label, f"compression ratio {info.file_size / info.compress_size:.0f}:1 "
                                    "looks like a zip bomb: skipped"))
            continue
        files.append(RawFile(ident, label, _zip_reader(zf, info, cfg), info.file_size))
    return files, rejected  # zf stays open while the readers need it (closed when collected)


def _zip_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cfg: IngestConfig) -> Callable[[], bytes]:
    """Reads one member from the already-open zip (re-opening it per member would re-parse its
    whole directory every time)."""
    limit = int(cfg.max_file_mb * MB) + 1

    def read() -> bytes:
        with zf.open(info) as fh:
            return fh.read(limit)  # never more than the limit, whatever the header claims
    return read


def from_files(paths: Sequence[str | Path], names: Sequence[str] | None = None
               ) -> tuple[list[RawFile], list[Rejection]]:
    """Loose uploads. The identity comes from ``names[i]`` ('Identity/file.jpg' uses the folder,
    else the file name without its trailing number), ``names`` defaulting to each path's name."""
    files: list[RawFile] = []
    rejected: list[Rejection] = []
    for i, p in enumerate(paths):
        p = Path(p)
        shown = (names[i] if names else p.name).replace("\\", "/")
        parts = [q for q in shown.split("/") if q not in ("", ".", "..")]
        fname = parts[-1] if parts else p.name
        ident = clean_identity(parts[-2]) if len(parts) >= 2 else identity_from_filename(fname)
        label = f"{ident}/{fname}"
        if not p.is_file():
            rejected.append((label, "file not found"))
        elif not _is_image_name(fname):
            rejected.append((label, f"not an image (extension {PurePosixPath(fname).suffix or 'none'})"))
        else:
            files.append(RawFile(ident, label, p.read_bytes, p.stat().st_size))
    return files, rejected


def collect(source: str | Path | Sequence[str | Path], cfg: IngestConfig = IngestConfig()
            ) -> tuple[list[RawFile], list[Rejection]]:
    """Any source: a folder, a .zip, or a list of files (a list holding one .zip is that zip)."""
    if isinstance(source, (list, tuple)):
        if len(source) == 1 and str(source[0]).lower().endswith(".zip"):
            return from_zip(source[0], cfg)
        return from_files(source)
    path = Path(source)
    if path.is_file() and path.suffix.lower() == ".zip":
        return from_zip(path, cfg)
    if path.is_file():
        return from_files([path])
    return from_folder(path)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB: 16-bit and float rescaled, CMYK converted, alpha on grey."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        hi = float(a.max()) if a.size else 0.0
        if im.mode.startswith("I;16") or 255 < hi <= 65535:
            a = a / 257.0  # 16-bit range onto 8 bits
        elif hi > 65535:
            a = (a - a.min()) * (255.0 / (hi - a.min()))
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (128, 128, 128, 255))
        im = Image.alpha_composite(bg, im)
    return im.convert("RGB")


def decode(raw: RawFile, cfg: IngestConfig = IngestConfig()) -> tuple[Picture | None, str | None]:
    """(picture, None) or (None, reason). Checks size, then header, then pixel count, then pixels."""
    if raw.size > cfg.max_file_mb * MB:
        return None, f"over the size limit ({raw.size / MB:.1f} MB > {cfg.max_file_mb:g} MB)"
    try:
        data = raw.read()
    except (OSError, zipfile.BadZipFile, RuntimeError) as e:
        return None, f"could not be read ({e})"
    if len(data) > cfg.max_file_mb * MB:
        return None, f"over the size limit (more than {cfg.max_file_mb:g} MB)"
    if not data:
        return None, "empty file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > cfg.max_pixels:
                return None, (f"image too large ({w}x{h} = {w * h / 1e6:.0f} megapixels; "
                              f"limit {cfg.max_pixels / 1e6:.0f})")
            if min(w, h) < cfg.min_side:
                return None, f"too small ({w}x{h}; need at least {cfg.min_side} px a side)"
            note = None
            if getattr(im, "n_frames", 1) > 1:
                note = f"animated ({im.n_frames} frames): the first frame is used"
                im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im)
            rgb = to_rgb(im)
            if max(rgb.size) > cfg.max_side:
                rgb.thumbnail((cfg.max_side, cfg.max_side), Image.Resampling.BILINEAR)
    except UnidentifiedImageError:
        return None, "not an image (the content is not a picture format we can read)"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, "image too large (decompression bomb guard)"
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        return None, f"truncated or corrupt image ({e})"
    return Picture(raw.identity, raw.label, rgb, hashlib.sha1(data).hexdigest(), note), None


def decode_all(files: Iterable[RawFile], cfg: IngestConfig = IngestConfig(),
               on_done: Callable[[int], None] | None = None
               ) -> tuple[list[Picture], list[Rejection]]:
    """Decode every file; duplicates (same bytes) are kept once, the first occurrence wins.
    ``on_done(k)`` hears every 16th file read (and the last)."""
    pictures: list[Picture] = []
    rejected: list[Rejection] = []
    seen: dict[str, str] = {}
    identities: set[str] = set()
    k = 0
    for k, raw in enumerate(files, 1):
        if on_done and k % 16 == 0:
            on_done(k)
        if len(pictures) >= cfg.max_images:
            rejected.append((raw.label, f"over the limit of {cfg.max_images} pictures"))
            continue
        if raw.identity not in identities and len(identities) >= cfg.max_identities:
            rejected.append((raw.label, f"over the limit of {cfg.max_identities} identities"))
            continue
        pic, reason = decode(raw, cfg)
        if pic is None:
            rejected.append((raw.label, reason or "unreadable"))
            continue
        if pic.digest in seen:
            rejected.append((raw.label, f"duplicate of {seen[pic.digest]}"))
            continue
        seen[pic.digest] = raw.label
        identities.add(raw.identity)
        pictures.append(pic)
    if on_done:
        on_done(k)
    return pictures, rejected
