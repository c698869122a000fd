"""Who is in the room: every open session's workspace, and the line for the shared CPU/GPU.

A classroom arrives at once. The app must (1) close a session's workspace when its tab closes,
through gradio's public ``unload`` event (not its internal state holder), (2) refuse a new session
plainly when the room is full instead of running the machine out of memory, and (3) tell a
visitor who uploads a gallery how long their recognizer's training will wait, and turn them to
the ready sample gallery when the wait is too long. Holds no ML: only counts and timings.
"""
from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any


class RoomFull(Exception):
    """A new session was refused: the message says why and what to do."""


class Room:
    """Open sessions (by gradio's session hash) and the training jobs waiting for the machine."""

    def __init__(self, max_sessions: int, max_wait_s: float, first_guess_s: float = 30.0,
                 ticket_ttl_s: float = 1800.0) -> None:
        self.max_sessions = max_sessions
        self.max_wait_s = max_wait_s
        self.ticket_ttl_s = ticket_ttl_s  # a ticket whose job never ran (tab closed in the queue)
        self._lock = threading.Lock()
        self._sessions: dict[str, Any] = {}
        self._tickets: dict[str, float] = {}  # session -> when its training was promised
        self._durations: deque[float] = deque([first_guess_s], maxlen=10)

    # ----- sessions -----------------------------------------------------------------------------
    def enter(self, session: str | None, workspace: Any) -> None:
        """Register a session's workspace; a new one beyond ``max_sessions`` raises RoomFull."""
        if not session:
            return
        with self._lock:
            if session not in self._sessions and len(self._sessions) >= self.max_sessions:
                raise RoomFull(
                    f"The studio is full: {self.max_sessions} visitors have a session open on "
                    "this machine. Please try again in a few minutes (sessions close when their "
                    "tab is closed).")
            self._sessions[session] = workspace

    def leave(self, session: str | None, close: Callable[[Any], None]) -> None:
        """The tab was closed: close its workspace now and drop its place in the line."""
        with self._lock:
            ws = self._sessions.pop(session, None) if session else None
            self._tickets.pop(session or "", None)
        if ws is not None:
            close(ws)

    def forget_workspace(self, workspace: Any) -> None:
        """The workspace was closed elsewhere (its gr.State expired): unregister it."""
        with self._lock:
            for key in [k for k, v in self._sessions.items() if v is workspace]:
                del self._sessions[key]
                self._tickets.pop(key, None)

    def size(self) -> int:
        with self._lock:
            return len(self._sessions)

    # ----- the line for training ----------------------------------------------------------------
    def _live_tickets(self) -> dict[str, float]:
        now = time.time()
        for key in [k for k, t in self._tickets.items() if now - t > self.ticket_ttl_s]:
            del self._tickets[key]
        return self._tickets

    def wait_estimate(self, session: str | None = None) -> tuple[int, float]:
        """(jobs ahead of this session, expected wait in seconds before its training starts)."""
        with self._lock:
            tickets = self._live_tickets()
            ahead = sum(1 for k, t in tickets.items()
                        if k != session and (session not in tickets or t <= tickets[session]))
            return ahead, ahead * statistics.mean(self._durations)

    def admit(self, session: str | None) -> tuple[int, float]:
        """Take a place in the line for a training, or raise RoomFull when the wait would be
        longer than ``max_wait_s`` (the visitor is pointed to the ready sample gallery)."""
        ahead, wait = self.wait_estimate(session)
        if wait > self.max_wait_s:
            raise RoomFull(
                f"The studio is busy: {ahead} recognizers are being trained before yours would "
                f"start (about {wait / 60:.0f} min). Try the sample gallery now (its recognizer "
                "is ready, no training needed), or upload again in a few minutes.")
        if session:
            with self._lock:
                self._tickets[session] = time.time()
        return ahead, wait

    def done(self, session: str | None, seconds: float | None) -> None:
        """This session's training finished (or failed, or was cancelled)."""
        with self._lock:
            self._tickets.pop(session or "", None)
            if seconds:
                self._durations.append(seconds)
