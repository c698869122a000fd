"""Property-based test of ingestion (hypothesis): any zip, with any member names and any bytes,
is read without an exception; every file is either kept or listed with a reason; no label can
point outside the gallery."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gslora_core.config import DataConfig  # noqa: E402
from gslora_core.data import load_gallery  # noqa: E402
from gslora_core.ingest import collect, decode_all  # noqa: E402


def picture_bytes(seed: int, fmt: str) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


SEGMENT = st.one_of(
    st.sampled_from(["..", ".", "", "Ana", "Ben Ode", "Zoë", "山田", "C:", "~", " "]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            min_size=1, max_size=8))
NAME = st.builds(lambda parts, ext, lead: lead + "/".join(parts) + ext,
                 st.lists(SEGMENT, min_size=1, max_size=4),
                 st.sampled_from([".jpg", ".png", ".txt", "", ".JPEG", ".gif"]),
                 st.sampled_from(["", "/", "../", "\\"])).filter(bool)  # zipfile cannot write ""
CONTENT = st.one_of(
    st.builds(picture_bytes, st.integers(0, 5), st.sampled_from(["JPEG", "PNG"])),
    st.binary(max_size=64),
    st.builds(lambda b: b[: len(b) // 2], st.builds(picture_bytes, st.integers(0, 5),
                                                     st.just("JPEG"))))


@pytest.mark.filterwarnings("ignore:Duplicate name")
# derandomize: the same 60 zips every run, so CI is reproducible (a random draw once failed a
# clean CI run on a case the test itself could not write).
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.tuples(NAME, CONTENT), max_size=10))
def test_any_zip_is_read_and_every_file_is_accounted_for(tmp_path, entries):
    path = tmp_path / "upload.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    files, rejected = collect(path)
    pictures, bad = decode_all(files)
    assert len(pictures) + len(bad) == len(files)  # each candidate decoded or refused
    for _label, reason in rejected + bad:
        assert isinstance(reason, str) and reason.strip()
    for f in files:
        parts = f.label.split("/")
        assert ".." not in parts and not f.label.startswith("/") and "\\" not in f.identity
    # and the gallery loader on top never raises, whatever it was given
    gallery = load_gallery(path, 32, DataConfig(preprocess="center", min_images=1, min_test=0),
                           cache_dir=None)
    assert len(gallery.train_y) + len(gallery.test_y) <= len(pictures)
