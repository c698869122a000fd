"""The README's layout list names every module of the engine, the page and the backbone's
distillation (issue 35)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_layout_names_every_module_and_its_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    layout = text.split("## Layout", 1)[1].split("```")[1]
    for package in ("gslora_core", "demo", "pretraining"):
        for module in sorted((ROOT / package).glob("*.py")):
            if module.stem.startswith("__"):
                continue
            assert re.search(rf"\b{module.stem}\.py\b", layout), f"{package}/{module.name}"
    for page in ("README.md", *(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))):
        body = (ROOT / page).read_text()
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", body):
            if not link.startswith("http"):
                assert (ROOT / page).parent.joinpath(link).resolve().exists(), (page, link)
