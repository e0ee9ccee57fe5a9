"""docs/architecture.md's package map is the one the code's imports draw (it cannot drift)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _diagram_script():
    spec = importlib.util.spec_from_file_location("architecture_diagram", ROOT / "scripts" / "architecture_diagram.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_architecture_map_is_what_the_code_imports():
    script = _diagram_script()
    text = script.DOC.read_text()

    assert script.document_with_diagram(text) == text, "run: python scripts/architecture_diagram.py --write"


def test_the_map_never_shows_a_domain_package_importing_an_edge():
    edges = _diagram_script().package_edges()
    domain = {"annotations.core", "annotations.reading", "annotations.consensus", "annotations.exports"}
    edges_of_the_house = {"annotations.api", "annotations.console", "annotations.views", "annotations.demo"}

    assert not [(a, b) for a, b in edges if a in domain and b in edges_of_the_house]
