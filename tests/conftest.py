"""Shared test setup: aligned face crops go to one temporary cache for the whole session, so
tests never write to the user's ~/.cache and each gallery is aligned once per run."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def crop_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("crop_cache")
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
