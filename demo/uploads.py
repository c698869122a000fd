"""When to delete a visitor's uploaded files from gradio's upload cache.

Gradio stores an upload under a folder named by the hash of its content, so when a class uploads
the teacher's zip, every visitor's copy is *the same path*. Deleting it as soon as one visitor's
handler has read it breaks every other visitor whose upload arrived meanwhile but whose handler
has not run yet (they got ``FileNotFoundError``). So a read upload is deleted only once its file
is older than a grace period: each new upload of the same bytes replaces the file (gradio renames
a fresh temporary file onto the path), which restarts the clock, and a file being read is never
deleted. The uploads are still gone minutes after the last visitor sent them, not hours.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


class UploadJanitor:
    """Deletes uploads ``grace_s`` after their last upload, never while a handler reads them."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self._readers: dict[Path, int] = {}
        self._timers: dict[Path, threading.Timer] = {}

    @contextmanager
    def reading(self, paths: Iterable[str | Path]) -> Iterator[list[Path]]:
        """Hold the files while the handler reads them; afterwards schedule their deletion."""
        held = [Path(p) for p in paths]
        with self._lock:
            for p in held:
                self._readers[p] = self._readers.get(p, 0) + 1
        try:
            yield held
        finally:
            with self._lock:
                for p in held:
                    self._readers[p] -= 1
                    if not self._readers[p]:
                        del self._readers[p]
            for p in held:
                self._schedule(p, self._left(p))

    def pending(self) -> int:
        """Uploads waiting for their deletion (for tests and the load benchmark)."""
        with self._lock:
            return len(self._timers)

    def _left(self, path: Path) -> float:
        try:
            return max(0.0, self.grace_s - (time.time() - path.stat().st_mtime))
        except FileNotFoundError:
            return 0.0

    def _schedule(self, path: Path, delay: float) -> None:
        with self._lock:
            old = self._timers.pop(path, None)
            if old is not None:
                old.cancel()
            timer = threading.Timer(delay, self._expire, [path])
            timer.daemon = True
            self._timers[path] = timer
        timer.start()

    def _expire(self, path: Path) -> None:
        with self._lock:  # readers register under this lock: none can start in between
            if self._timers.get(path) is threading.current_thread():
                del self._timers[path]
            left = self._left(path)
            if path not in self._readers and left <= 0:
                path.unlink(missing_ok=True)
                try:
                    path.parent.rmdir()  # gradio's per-content folder, when nothing else is in it
                except OSError:
                    pass
                return
        self._schedule(path, max(left, 1.0))  # being read, or uploaded again since: later
