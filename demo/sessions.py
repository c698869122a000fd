"""Where sessions keep their files, and the clean-up of the ones left behind.

Every workspace writes only under its own directory in the sessions root (``close()`` removes
it); ``sweep`` removes directories a crashed or abandoned session left idle past a time limit.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from gslora_core.config import StudioConfig


def sessions_root(cfg: StudioConfig) -> Path:
    if cfg.sessions_root:
        return Path(cfg.sessions_root)
    return Path(tempfile.gettempdir()) / "gslora_sessions"


def upload_faces_root(cfg: StudioConfig) -> Path:
    """Aligned crops of uploaded pictures, shared by every session and keyed by the picture's
    content hash: the 2nd to 20th visitor uploading a teacher's zip reuse the 1st's alignment.
    Only a visitor who sends the very same bytes can get a crop back; entries are deleted
    ``session_ttl_s`` after their last use. Beside the sessions root, not in it."""
    root = sessions_root(cfg)
    return root.with_name(root.name + "_faces")


def sweep(root: Path, max_age_s: float) -> list[str]:
    """Remove session directories not used for ``max_age_s`` (a crashed or abandoned session)."""
    removed = []
    if not root.is_dir():
        return removed
    now = time.time()
    for d in root.iterdir():
        try:
            if d.is_dir() and now - d.stat().st_mtime > max_age_s:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d.name)
        except FileNotFoundError:
            continue
    return removed
