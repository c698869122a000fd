"""The whole flow through the app's named API endpoints (gradio_client), on the real sample
gallery and the shipped recognizer: what a script, or the page, gets."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from demo.request import recipe_inputs
from gslora_core.config import project_path
from gslora_core.data import load_gallery_for
from gslora_core.evaluation import evaluate
from gslora_core.model import load_recognizer

pytestmark = pytest.mark.slow
gradio_client = pytest.importorskip("gradio_client")

# preset, rank, α, β, BND, steps, lr, shots: the page's defaults, what a visitor sends
FAST = tuple(recipe_inputs())


def knobs(**changed) -> tuple:
    """The /forget endpoint's recipe and knobs (the page's defaults) with some changed."""
    return tuple(recipe_inputs(**changed))


def find_report(outputs) -> dict:
    return next(o for o in outputs if isinstance(o, dict) and "acc_f_after" in o)


def export(client) -> Path:
    files = client.predict(api_name="/export")[0]
    return next(Path(f) for f in files if f.endswith(".safetensors"))


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_forget_rollback_cancel_export(app_url, tmp_path):
    client = gradio_client.Client(app_url, verbose=False, download_files=str(tmp_path))
    client.predict(api_name="/load_sample")
    shipped = load_recognizer(project_path("checkpoints/sample_recognizer.safetensors"))

    # Forget two people: Acc_f to (almost) zero, Acc_r within 3 points, live updates on the way.
    t0 = time.perf_counter()
    job = client.submit(["Bill_Clinton", "Serena_Williams"], *FAST, api_name="/forget")
    report = find_report(job.result())
    click_to_results = time.perf_counter() - t0
    # The task takes about a second now: the page shows its start at once, then its end (the
    # live progress of a long task is checked with the cancelled one below).
    assert len(job.outputs()) >= 2, "the page showed nothing while the task ran"
    assert report["stop"]["reason"] == "done" and report["blocks_used"] == 1
    assert report["acc_f_after"] <= 0.05
    assert report["acc_r_before"] - report["acc_r_after"] <= 0.03 + 1e-9
    assert report["zero_groups"] >= 3, report["group_norms"]  # blocks left untouched
    print(f"click to results {click_to_results:.1f} s; task {report['seconds']:.1f} s")

    # delete vs GS-LoRA (without the retrain: the browser test runs that), through the API.
    md, table, _ = client.predict(False, api_name="/compare")
    rows = {r[0]: r for r in table["data"]}
    assert set(rows) == {"delete (drop their head rows)", "GS-LoRA (your tasks)"}
    assert "Forgotten: Bill_Clinton, Serena_Williams" in md

    # The exported model keeps the gated task as an adapter with its gate (no plain weight can
    # hold a change that depends on the picture) and scores what the report says.
    exported = load_recognizer(export(client))
    assert exported.forgotten() == ["Bill_Clinton", "Serena_Williams"]
    assert [t.name for t in exported.gated_tasks] == [t.name for t in exported.tasks]
    gallery = load_gallery_for(exported, project_path("assets/sample_gallery"))
    now = evaluate(exported, gallery)
    assert now["acc_o"] == pytest.approx(report["acc_f_after"])
    assert now["acc_r"] == pytest.approx(report["acc_r_after"])

    # Roll back: the model is exactly the shipped one again.
    client.predict(api_name="/rollback")
    assert same_weights(load_recognizer(export(client)), shipped)

    # Cancel mid-run: live progress comes while it runs, the page says it was cancelled and the
    # model is untouched. (Every block from the start and a margin no face reaches: it would run
    # to its cap.)
    job = client.submit(["Kofi_Annan"], "dense", *knobs(margin=2.0)[1:], api_name="/forget")
    deadline = time.time() + 120
    while len(job.outputs()) < 3 and time.time() < deadline:
        time.sleep(0.5)
    assert len(job.outputs()) >= 3, "the page got no live progress while the task ran"
    assert "Cancelling" in client.predict(api_name="/cancel")
    status = [o for o in job.result() if isinstance(o, str) and "Cancelled" in o]
    assert status, "no 'Cancelled' message"
    assert same_weights(load_recognizer(export(client)), shipped)


def test_suggest_ticks_two_people_the_recognizer_knows(app_url):
    client = gradio_client.Client(app_url, verbose=False)
    client.predict(api_name="/load_sample")
    picked = client.predict(api_name="/suggest")
    assert len(picked) == 2 and len(set(picked)) == 2


def test_errors_are_readable_and_sessions_are_separate(app_url, tmp_path):
    a = gradio_client.Client(app_url, verbose=False, download_files=str(tmp_path / "a"))
    b = gradio_client.Client(app_url, verbose=False, download_files=str(tmp_path / "b"))
    with pytest.raises(Exception, match="load a gallery first"):
        b.predict([], *FAST, api_name="/forget")
    # a name the page does not offer reaches the engine, which says why in words (not gradio's
    # "not in the list of choices")
    with pytest.raises(Exception, match="load a gallery first"):  # b has no gallery at all
        b.predict(["Bill_Clinton"], *FAST, api_name="/forget")
    a.predict(api_name="/load_sample")
    with pytest.raises(Exception, match="'Nobody_Here' is not known"):
        a.predict(["Nobody_Here"], *FAST, api_name="/forget")
    with pytest.raises(Exception, match="at least one identity"):
        a.predict([], *FAST, api_name="/forget")
    with pytest.raises(Exception, match="bnd .* must be positive"):  # the engine's own check
        a.predict(["Bill_Clinton"], *knobs(bnd=0, steps=60), api_name="/forget")
    with pytest.raises(Exception, match="less than minimum value 1"):  # the page's field limits
        a.predict(["Bill_Clinton"], *knobs(steps=0), api_name="/forget")
    # b still has no gallery although a has one; a still works after its errors
    with pytest.raises(Exception, match="load a gallery first"):
        b.predict(api_name="/export")
    out = a.predict(gradio_client.handle_file(str(project_path("assets/probes/Bill_Clinton_0010.jpg"))),
                    None, api_name="/try_photo")
    assert out[1]["data"][0][1] == "Bill_Clinton" and out[2]["data"][0][1] == "Bill_Clinton"


def test_upload_a_zip_train_then_forget_and_bad_uploads_lose_nothing(app_url, tmp_path):
    import zipfile

    sample = project_path("assets/sample_gallery")
    good = tmp_path / "two_people.zip"
    with zipfile.ZipFile(good, "w") as zf:
        for who in ("Kofi_Annan", "Tiger_Woods"):
            for p in sorted((sample / who).iterdir())[:6]:
                zf.write(p, f"my_gallery/{who}/{p.name}")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 this is not really a zip")
    c = gradio_client.Client(app_url, verbose=False, download_files=str(tmp_path / "dl"))

    out = c.predict([gradio_client.handle_file(str(good))], api_name="/upload_gallery")
    assert any(isinstance(o, str) and "12 face pictures" in o for o in out)
    out = c.predict(api_name="/train_recognizer")
    assert any(isinstance(o, str) and "trained on your gallery" in o for o in out)

    with pytest.raises(Exception, match="zip"):
        c.predict([gradio_client.handle_file(str(broken))], api_name="/upload_gallery")
    # the first upload and its recognizer are still there and work
    report = find_report(c.predict(["Tiger_Woods"], *knobs(steps=20), api_name="/forget"))
    assert report["forgotten"] == ["Tiger_Woods"] and report["num_retained"] == 1


def test_five_clients_at_once_all_finish_with_their_own_results(app_url):
    """The load test, with short tasks (10 steps) so CI stays fast; the README quotes the full
    run of ``python -m bench.load`` (the fast preset's own steps)."""
    from bench.load import run_load

    result = run_load(app_url, clients=5, steps=10)
    for row in result["clients"]:
        assert row.get("ok"), row
        print(f"{row['person']}: queue {row['queue_wait_s']:.1f} s, run {row['run_s']:.1f} s")
    assert result["all_finished"]
