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
