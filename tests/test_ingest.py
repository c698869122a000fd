"""Gallery ingestion: every format, every bad case, zips, uploads, the alignment cache."""
from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gslora_core.alignment import FaceAligner
from gslora_core.config import DataConfig, IngestConfig
from gslora_core.data import load_gallery
from gslora_core.ingest import collect, decode_all, identity_from_filename

LFW = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lfw-deepfunneled"
CENTER = DataConfig(preprocess="center", min_images=1)


def noise(w: int = 120, h: int = 100, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def rejected_reason(gallery, label: str) -> str:
    reasons = dict(gallery.rejected)
    assert label in reasons, f"{label} not rejected; rejected = {gallery.rejected}"
    return reasons[label]


def test_every_format_is_read_as_rgb(tmp_path: Path) -> None:
    d = tmp_path / "g" / "Ana"
    rgb = Image.fromarray(noise())
    save(rgb, d / "a.jpg")
    save(rgb, d / "b.png")
    save(rgb, d / "c.webp")
    save(rgb, d / "d.bmp")
    save(rgb.convert("L"), d / "e.pgm")
    save(rgb, d / "f.ppm")
    save(rgb.convert("RGBA"), d / "g.png")
    save(Image.fromarray((noise()[..., 0].astype(np.uint16) * 257)), d / "h16.png")
    save(rgb.convert("CMYK"), d / "i.jpg")
    save(rgb, d / "j.tiff")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    save(rgb, d / "k_exif.jpg", exif=exif)
    frames = [Image.fromarray(noise(seed=s)) for s in range(3)]
    frames[0].save(d / "l.gif", save_all=True, append_images=frames[1:])
    files, rejected = collect(tmp_path / "g")
    assert rejected == []
    pictures, bad = decode_all(files)
    assert bad == []
    by_name = {p.label.split("/")[1]: p for p in pictures}
    assert len(by_name) == 12
    assert all(p.image.mode == "RGB" for p in pictures)
    assert by_name["k_exif.jpg"].image.size == (100, 120)  # EXIF orientation applied
    assert by_name["a.jpg"].image.size == (120, 100)
    sixteen = np.asarray(by_name["h16.png"].image)[..., 0].astype(int)
    assert abs(sixteen - noise()[..., 0]).max() <= 1  # 16-bit rescaled onto 8 bits, not clipped
    assert "first frame" in (by_name["l.gif"].note or "")
    gallery = load_gallery(tmp_path / "g", 32, CENTER)
    assert gallery.names == ["Ana"] and len(gallery.train_y) + len(gallery.test_y) == 12


def test_bad_files_are_listed_and_the_rest_is_kept(tmp_path: Path) -> None:
    g = tmp_path / "g"
    for i, ident in enumerate(("Ana", "Ben")):
        for k in range(3):  # distinct fixed seeds: str hash() is salted per process
            save(Image.fromarray(noise(seed=100 + 10 * i + k)), g / ident / f"{k}.jpg")
    (g / "Ana" / "text.jpg").write_text("this is not a picture")
    good = io.BytesIO()
    Image.fromarray(noise(seed=7)).save(good, "JPEG")
    (g / "Ana" / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 3])
    save(Image.fromarray(noise(10, 10)), g / "Ana" / "tiny.png")
    save(Image.new("L", (7100, 7100)), g / "Ana" / "huge.png")  # 50 megapixels
    (g / "Ana" / "notes.txt").write_text("hello")
    (g / "Ana" / "empty.png").write_bytes(b"")
    shutil.copy(g / "Ana" / "0.jpg", g / "Ana" / "copy.jpg")
    shutil.copy(g / "Ana" / "1.jpg", g / "Ben" / "same_as_ana.jpg")
    (g / "loose.jpg").write_bytes((g / "Ana" / "2.jpg").read_bytes())
    gallery = load_gallery(g, 32, CENTER)
    assert "not an image" in rejected_reason(gallery, "Ana/text.jpg")
    assert "truncated" in rejected_reason(gallery, "Ana/truncated.jpg")
    assert "too small" in rejected_reason(gallery, "Ana/tiny.png")
    assert "too large" in rejected_reason(gallery, "Ana/huge.png")
    assert "not an image" in rejected_reason(gallery, "Ana/notes.txt")
    assert "empty" in rejected_reason(gallery, "Ana/empty.png")
    assert "duplicate of Ana/0.jpg" in rejected_reason(gallery, "Ana/copy.jpg")
    assert "duplicate of Ana/1.jpg" in rejected_reason(gallery, "Ben/same_as_ana.jpg")
    assert "identity folder" in rejected_reason(gallery, "loose.jpg")
    assert gallery.names == ["Ana", "Ben"]
    assert len(gallery.train_y) + len(gallery.test_y) == 6  # every valid picture kept


def test_size_limits_are_configurable(tmp_path: Path) -> None:
    g = tmp_path / "g"
    for k in range(4):
        save(Image.fromarray(noise(200, 200, seed=k)), g / f"P{k}" / "a.png")
    cfg = IngestConfig(max_file_mb=0.05, max_identities=3)
    gallery = load_gallery(g, 32, CENTER, ingest=cfg)
    reasons = [r for _, r in gallery.rejected]
    assert all("size limit" in r for r in reasons) and len(reasons) == 4
    cfg = IngestConfig(max_identities=3)
    gallery = load_gallery(g, 32, CENTER, ingest=cfg)
    assert gallery.names == ["P0", "P1", "P2"]
    assert "limit of 3 identities" in rejected_reason(gallery, "P3/a.png")


def test_large_pictures_are_held_scaled_down(tmp_path: Path) -> None:
    """A class of phone photos must not hold full-size pixels while faces are found."""
    save(Image.fromarray(noise(300, 500, seed=1)), tmp_path / "g" / "P0" / "a.png")
    files, _ = collect(tmp_path / "g")
    pictures, rejected = decode_all(files, IngestConfig(max_side=200))
    assert not rejected and pictures[0].image.size == (120, 200)  # 300 x 500, aspect kept


def test_too_few_pictures_are_excluded_with_a_reason(tmp_path: Path) -> None:
    g = tmp_path / "g"
    for k in range(4):
        save(Image.fromarray(noise(seed=k)), g / "Many" / f"{k}.jpg")
    save(Image.fromarray(noise(seed=9)), g / "Once" / "0.jpg")
    gallery = load_gallery(g, 32, DataConfig(preprocess="center", min_images=4))
    assert gallery.names == ["Many"]
    assert gallery.excluded == [("Once", "only 1 usable pictures (need 4)")]


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def jpeg_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(noise(seed=seed)).save(buf, "JPEG")
    return buf.getvalue()


def test_zip_with_top_folder_traversal_and_bomb(tmp_path: Path) -> None:
    members = {f"gallery/{who}/{k}.jpg": jpeg_bytes(i * 10 + k)
               for i, who in enumerate(["Ana María", "王菲"]) for k in range(2)}
    members["gallery/../../evil.jpg"] = jpeg_bytes(99)
    members["/etc/abs.jpg"] = jpeg_bytes(98)
    members["gallery/Ana María/deeper/x.jpg"] = jpeg_bytes(97)
    members["gallery/Ana María/bomb.jpg"] = b"\0" * (4 * 1024 * 1024)
    z = make_zip(tmp_path / "up.zip", members)
    files, rejected = collect(z)
    reasons = dict(rejected)
    assert "unsafe path" in reasons["gallery/../../evil.jpg"]
    assert "unsafe path" in reasons["/etc/abs.jpg"]
    assert any("zip bomb" in r for r in reasons.values())
    assert any("nested too deep" in r for r in reasons.values())
    gallery = load_gallery(z, 32, CENTER)
    assert gallery.names == ["Ana María", "王菲"]  # non-Latin names and spaces are kept
    assert len(gallery.train_y) + len(gallery.test_y) == 4


def test_a_zip_member_with_no_name_is_refused_not_a_crash(tmp_path: Path) -> None:
    """Found by the property test: a member named "." has no path parts at all."""
    files, rejected = collect(make_zip(tmp_path / "odd.zip", {"Ana/a.gif": b"", ".": b""}))
    assert [f.label for f in files] == ["Ana/a.gif"] and rejected == [(".", "no file name in zip: skipped")]


def test_zip_refusals(tmp_path: Path) -> None:
    empty = make_zip(tmp_path / "empty.zip", {})
    gallery = load_gallery(empty, 32, CENTER)
    assert gallery.names == [] and gallery.rejected == []
    (tmp_path / "fake.zip").write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable zip"):
        collect(tmp_path / "fake.zip")
    big = make_zip(tmp_path / "big.zip", {f"A/{k}.jpg": jpeg_bytes(k) for k in range(3)})
    with pytest.raises(ValueError, match="would expand to"):
        collect(big, IngestConfig(max_zip_mb=0.001))


def test_uploaded_files_take_identity_from_their_names(tmp_path: Path) -> None:
    assert identity_from_filename("Angelina_Jolie_0003.jpg") == "Angelina_Jolie"
    assert identity_from_filename("Ana (2).png") == "Ana"
    assert identity_from_filename("../../x/Ben-12.jpeg") == "Ben"
    paths = [save(Image.fromarray(noise(seed=k)), tmp_path / f"Ana_{k}.jpg") for k in range(2)]
    paths += [save(Image.fromarray(noise(seed=5 + k)), tmp_path / f"Ben_{k}.jpg") for k in range(2)]
    gallery = load_gallery([str(p) for p in paths], 32, CENTER)
    assert gallery.names == ["Ana", "Ben"]


@pytest.mark.skipif(not LFW.is_dir(), reason="needs ../shared/datasets/lfw-deepfunneled")
def test_mtcnn_gallery_is_aligned_once_and_cached(tmp_path: Path) -> None:
    g = tmp_path / "g"
    for who in ("Colin_Powell", "Tony_Blair"):
        for src in sorted((LFW / who).glob("*.jpg"))[:3]:
            (g / who).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, g / who / src.name)
    save(Image.fromarray(noise(250, 250)), g / "Tony_Blair" / "noise.jpg")
    # An already aligned 112x112 face crop (MTCNN may miss it) is accepted as it is.
    aligned = FaceAligner().align(Image.open(g / "Colin_Powell" / sorted(
        p.name for p in (g / "Colin_Powell").iterdir())[0]).convert("RGB"))
    save(aligned.crop, g / "Colin_Powell" / "already_aligned.png")

    class Counting(FaceAligner):
        calls = 0

        def align_many(self, images, on_done=None):
            Counting.calls += len(images)
            return super().align_many(images, on_done)

    cfg = DataConfig(preprocess="mtcnn", min_images=3)
    first = load_gallery(g, 112, cfg, cache_dir=tmp_path / "cache", aligner=Counting())
    assert Counting.calls == 8
    assert rejected_reason(first, "Tony_Blair/noise.jpg") == "no face found"
    assert first.names == ["Colin_Powell", "Tony_Blair"]
    assert first.methods["Colin_Powell/already_aligned.png"] in ("mtcnn", "as-is")
    assert first.train_x.shape[1:] == (3, 112, 112)
    second = load_gallery(g, 112, cfg, cache_dir=tmp_path / "cache", aligner=Counting())
    assert Counting.calls == 8  # every crop came from the cache
    assert second.train_files == first.train_files
    assert torch_equal(second.train_x, first.train_x)


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_a_stray_file_beside_the_identity_folders_does_not_hide_the_gallery(tmp_path: Path) -> None:
    """my_gallery/README.txt (or a loose picture) next to my_gallery/<identity>/ folders: the
    wrapper is still taken off and only the stray files are refused, each with its reason."""
    members = {f"my_gallery/{who}/{k}.jpg": jpeg_bytes(i * 10 + k)
               for i, who in enumerate(["Ana", "Ben"]) for k in range(2)}
    members["my_gallery/README.txt"] = b"my pictures"
    members["my_gallery/loose.jpg"] = jpeg_bytes(50)
    members["top.jpg"] = jpeg_bytes(51)
    files, rejected = collect(make_zip(tmp_path / "z.zip", members))
    assert sorted(f.label for f in files) == ["Ana/0.jpg", "Ana/1.jpg", "Ben/0.jpg", "Ben/1.jpg"]
    assert dict(rejected) == {"README.txt": "not inside an identity folder",
                              "loose.jpg": "not inside an identity folder",
                              "top.jpg": "not inside an identity folder"}


def test_the_crop_cache_takes_the_same_entry_from_many_writers_at_once(tmp_path: Path) -> None:
    """Five visitors loading the sample gallery on a fresh cache write the same entries at the
    same moment; with one shared temporary name, the later renames failed (FileNotFoundError)."""
    import threading

    from PIL import Image

    from gslora_core.data import CropCache

    cache = CropCache(tmp_path)
    crop = Image.new("RGB", (112, 112), (120, 80, 40))
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(20):
                cache.put("ab" * 20, crop, "mtcnn", None, 1)
        except BaseException as err:  # noqa: BLE001 - collected for the assertion
            errors.append(err)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    entry = cache.get("ab" * 20)
    assert entry["method"] == "mtcnn" and entry["crop"].size == (112, 112)
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_gallery_of_object_classes_uses_whole_pictures_and_looks_for_no_face(tmp_path: Path
                                                                               ) -> None:
    """preprocess="whole" (issue 36): class folders of pictures with no face; each picture's
    central square, resized; nothing refused for having no face; an unknown mode is refused."""
    g = tmp_path / "objects"
    for cls in ("cat", "truck"):
        for k in range(4):
            img = np.zeros((40, 80, 3), dtype=np.uint8)  # wide: a red square in the middle
            img[:, 20:60] = (200, 30 + k, 30 + 10 * (cls == "cat"))  # distinct pictures
            save(Image.fromarray(img), g / cls / f"{cls}_{k}.png")
    gallery = load_gallery(g, 32, DataConfig(preprocess="whole", min_images=4), cache_dir=None)
    assert gallery.names == ["cat", "truck"] and not gallery.rejected
    assert set(gallery.methods.values()) == {"whole"}
    x = gallery.train_x
    assert x.shape[1:] == (3, 32, 32)
    # the central square is the red block: no black border from the picture's sides (uint8)
    assert int(x[:, 0].min()) > 150 and int(x[:, 1].max()) < 60
    with pytest.raises(ValueError, match="unknown preprocess 'objects'"):
        DataConfig(preprocess="objects")


def test_a_gallery_s_shipped_crop_comes_before_a_cached_one(tmp_path: Path) -> None:
    """The sample's pictures are LFW pictures a bench gallery also aligns: a cached crop of the
    same picture (another batch, another thread count) must not replace the one its kept
    states were measured on."""
    from PIL import Image

    from gslora_core.data import CropCache

    digest = "cd" * 20
    CropCache(tmp_path / "ship").put(digest, Image.new("RGB", (8, 8), (10, 20, 30)), "mtcnn", None, 1)
    CropCache(tmp_path / "cache").put(digest, Image.new("RGB", (8, 8), (11, 20, 30)), "mtcnn", None, 1)
    both = CropCache(tmp_path / "cache", shipped=tmp_path / "ship")
    assert both.get(digest)["crop"].getpixel((0, 0)) == (10, 20, 30)
    assert CropCache(tmp_path / "cache").get(digest)["crop"].getpixel((0, 0)) == (11, 20, 30)
    assert both.get("ef" * 20) is None
