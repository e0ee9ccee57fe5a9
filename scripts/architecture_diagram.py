"""Draw the package map of docs/architecture.md from the code's imports (so the picture cannot drift).

    python scripts/architecture_diagram.py           print the Mermaid diagram
    python scripts/architecture_diagram.py --write   rewrite it between the markers in docs/architecture.md

tests/test_architecture_doc.py fails when the document's diagram is not what the code imports.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
BEGIN = "<!-- diagram:begin (scripts/architecture_diagram.py --write) -->"
END = "<!-- diagram:end -->"
# The packages the map shows: annotations' capability packages and edges, and viewer's parts.
SHOWN = [
    "annotations.api",
    "annotations.console",
    "annotations.views",
    "annotations.management",
    "annotations.demo",
    "annotations.reading",
    "annotations.assignment",
    "annotations.booth",
    "annotations.questions",
    "annotations.follow_up",
    "annotations.consensus",
    "annotations.exports",
    "annotations.segmentation",
    "annotations.predictions",
    "annotations.core",
    "annotations.models",
    "viewer",
]


def package_of(module: str, shown: list[str]) -> str | None:
    """Return the shown package a module belongs to (the longest matching prefix), or None."""
    matches = [p for p in shown if module == p or module.startswith(p + ".")]
    return max(matches, key=len) if matches else None


def package_edges() -> list[tuple[str, str]]:
    """Return (importer, imported) pairs between shown packages, sorted."""
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph("annotations", "viewer", "readerboard", cache_dir=None)
    shown = [p for p in SHOWN if p in graph.modules]
    edges: set[tuple[str, str]] = set()
    for module in graph.modules:
        source = package_of(module, shown)
        if source is None:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            target = package_of(imported, shown)
            if target is not None and target != source:
                edges.add((source, target))
    return sorted(edges)


def mermaid() -> str:
    """Return the Mermaid flowchart of the package edges."""

    def node(name: str) -> str:
        return name.replace("annotations.", "").replace(".", "_")

    lines = ["```mermaid", "flowchart TD"]
    lines += [f"    {node(a)} --> {node(b)}" for a, b in package_edges()]
    lines.append("```")
    return "\n".join(lines)


def document_with_diagram(text: str) -> str:
    """Return the document with the diagram between the markers replaced by the current one."""
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{mermaid()}\n{END}{tail}"


if __name__ == "__main__":
    if "--write" in sys.argv:
        DOC.write_text(document_with_diagram(DOC.read_text()))
    else:
        print(mermaid())
