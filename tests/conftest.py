"""Shared test setup: aligned face crops go to one temporary cache for the whole run, so tests
never write to the user's ~/.cache and each gallery is aligned once per run; under pytest-xdist
(pytest.ini runs two workers) the CPU is split between the workers."""
from __future__ import annotations

import os

import pytest


def pytest_configure(config) -> None:
    """Each xdist worker gets its share of the cores, it and the CLIs it starts: two workers of
    two torch threads each on a 2-core machine spin against each other (slower than one)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and "GRADIO_TEMP_DIR" not in os.environ:
        # Each worker's servers keep their files in a cache of their own (one run got a 403 for
        # a result file while two workers' servers shared gradio's /tmp/gradio).
        import tempfile

        os.environ["GRADIO_TEMP_DIR"] = os.path.join(tempfile.gettempdir(), f"gradio_{worker}")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ["OMP_NUM_THREADS"] = threads  # inherited by subprocesses (the CLI tests)
        import torch

        torch.set_num_threads(int(threads))


@pytest.fixture(scope="session", autouse=True)
def crop_cache(tmp_path_factory):
    # One folder for every worker of the run (crops are written atomically, see data.py), so
    # the sample gallery is aligned once per worker at most, not once per test.
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    path = root / "crop_cache"
    path.mkdir(exist_ok=True)
    old = os.environ.get("GSLORA_CACHE")
    os.environ["GSLORA_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("GSLORA_CACHE", None)
    else:
        os.environ["GSLORA_CACHE"] = old


@pytest.fixture(scope="session")
def studio_root(tmp_path_factory):
    """Where the test app keeps its sessions' files (checked by the isolation tests)."""
    return tmp_path_factory.mktemp("sessions")


@pytest.fixture(scope="session")
def app_url(studio_root):
    """The real app, served in this process on a free port (shared by API and browser tests)."""
    from demo.ui import serve_in_background
    from gslora_core.config import StudioConfig

    url, demo = serve_in_background(StudioConfig(sessions_root=str(studio_root)))
    yield url
    demo.close()
