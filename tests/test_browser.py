"""A real browser (Chromium, driven by playwright) through the whole page: load the sample
gallery, forget two people, wait for the results and the group heatmap, try a photo.

Screenshots go to ``artifacts/screenshots`` (or ``$GSLORA_SCREENSHOTS``) for people to look at.
Needs ``/usr/bin/chromium`` (``apt-get install chromium``) and the ``playwright`` package; CI
installs both and sets GSLORA_REQUIRE_BROWSER=1 so that a missing browser fails instead of
skipping."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gslora_core.workspace import project_path

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Typed into the step-cap field: the default recipe's own cap, so the saved screenshots show
# what a visitor gets (the task stops when its people are forgotten, long before the cap).
STEPS = "400"


def _browser_available() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "python playwright is not installed"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def page():
    missing = _browser_available()
    if missing:
        if os.environ.get("GSLORA_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def shoot(page, name: str) -> None:
    out = Path(os.environ.get("GSLORA_SCREENSHOTS") or project_path("artifacts/screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(800)  # let plots finish drawing
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)


def test_the_whole_page_in_chromium(page, app_url, studio_root):
    from playwright.sync_api import expect

    sessions_before = set(studio_root.iterdir())
    page.goto(app_url)
    load = page.get_by_role("button", name="Load the sample gallery (20 people)")
    load.click()
    page.get_by_text("300 face pictures").first.wait_for()
    assert page.get_by_text("Every file was used").count() == 1
    shoot(page, "1_gallery")

    page.get_by_role("tab", name="2 · Recognizer").click()
    page.get_by_text("Test accuracy over 20 people").first.wait_for()
    shoot(page, "2_recognizer")

    page.get_by_role("tab", name="3 · Forget").click()
    page.get_by_label("Bill_Clinton").check()
    page.locator("#forget-faces .thumbnail-item").nth(16).click()  # Serena_Williams, chosen by her face
    expect(page.get_by_label("Serena_Williams")).to_be_checked()
    page.get_by_text("Advanced settings").click()
    steps = page.locator("#forget-steps input")
    for _ in range(5):  # the accordion renders its fields as it opens: refill until it sticks
        steps.fill(STEPS)
        steps.press("Tab")
        page.wait_for_timeout(400)
        if steps.input_value() == STEPS:
            break
    expect(steps).to_have_value(STEPS)
    page.get_by_role("button", name="Forget", exact=True).click()
    page.get_by_text("forgot Bill_Clinton, Serena_Williams").first.wait_for(timeout=240_000)
    # The task says why it ended: its people forgotten on their training pictures, one block;
    # on held-back pictures they are "not recognized", nobody taken for someone else.
    summary = page.locator("#results-summary")
    summary.get_by_text("all 2 forgotten on their training pictures").first.wait_for()
    summary.get_by_text("1 block used").first.wait_for()
    summary.get_by_text("8 answered \"not recognized\", 0 taken for someone else").first \
        .wait_for()
    heatmap = page.locator(".js-plotly-plot").filter(has_text="transformer block")
    heatmap.last.wait_for()
    # The heatmap names the blocks each task used, and the history says them too.
    heatmap.filter(has_text="task1 · blocks ").last.wait_for()
    assert page.get_by_text("blocks used").count() >= 1
    assert page.get_by_text("Acc_f (people forgotten now)").count() >= 1
    shoot(page, "4_results")
    page.get_by_role("tab", name="3 · Forget").click()  # the task's own page, as it ended
    page.locator("#forget-status").get_by_text("all 2 forgotten").first.wait_for()
    page.locator(".js-plotly-plot").filter(has_text="Training curves").first.wait_for()
    shoot(page, "3_forget_done")
    page.get_by_role("tab", name="4 · Results").click()

    # Is the person gone from the model? delete vs GS-LoRA vs retrain, and the embedding map.
    page.locator("#compare-btn").click()
    page.locator("#compare-status").get_by_text("Verification threshold fixed").wait_for(
        timeout=240_000)
    table = page.locator("#compare-table")
    for row in ("delete (drop their head rows)", "GS-LoRA (your tasks)", "retrain without them"):
        assert table.get_by_text(row, exact=True).count() >= 1, row
    page.locator(".js-plotly-plot").filter(has_text="Embeddings of held-back pictures").first \
        .wait_for()
    page.locator("#compare-btn").scroll_into_view_if_needed()
    shoot(page, "4b_compare_and_map")

    page.get_by_role("tab", name="5 · Try a photo").click()
    page.locator("#photo-input input[type=file]").set_input_files(
        str(project_path("assets/probes/Bill_Clinton_0010.jpg")))  # the upload runs it
    page.locator("#photo-status").get_by_text("Forgotten: Bill_Clinton, Serena_Williams").wait_for()
    # Forgotten means unknown: his unseen photo is "not recognized" now, named before.
    page.locator("#photo-status").get_by_text("Now: not recognized").first.wait_for()
    page.locator("#photo-status").get_by_text("before any forgetting: Bill_Clinton").first \
        .wait_for()
    shoot(page, "5_try_a_photo")
    # An example photo needs no file: click it, then ask.
    page.get_by_text("Example photos").first.wait_for()
    page.locator(".gallery-item, button.gallery-item, [data-testid='examples'] button").last.click()
    page.get_by_role("button", name="Who is this?").click()
    page.locator("#photo-now").get_by_text("Angelina_Jolie").first.wait_for()  # the last example
    shoot(page, "5b_example_photo")

    page.get_by_role("tab", name="How it works").click()
    page.get_by_text("Your last run").first.wait_for()
    page.locator(".js-plotly-plot").filter(has_text="against task size").first.wait_for()
    shoot(page, "6_how_it_works")

    # Closing the tab ends the session: its directory is deleted at once, not an hour later.
    mine = set(studio_root.iterdir()) - sessions_before
    assert len(mine) == 1
    page.close()
    for _ in range(40):
        if not any(d.exists() for d in mine):
            break
        time.sleep(0.5)
    assert not any(d.exists() for d in mine), "the closed session's files are still there"
