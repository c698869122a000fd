"""The layout issue 35 asks for: the engine and the page never import the backbone's
distillation (``pretraining/``), and the engine never imports gradio or the page."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported(package: str) -> dict[str, set[str]]:
    """Top-level modules each file of ``package`` imports (absolute imports only)."""
    out = {}
    for f in (ROOT / package).glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        out[f.name] = names
    return out


def test_the_engine_and_the_page_do_not_import_pretraining_and_the_engine_no_ui() -> None:
    for package, banned in (("gslora_core", {"pretraining", "gradio", "demo"}),
                            ("demo", {"pretraining"})):
        for name, mods in imported(package).items():
            assert not mods & banned, (package, name, mods & banned)
    assert not any("pretraining" in m for m in imported(".")["app.py"])
