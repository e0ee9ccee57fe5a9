"""Task instructions: Markdown written by an admin, rendered to HTML safe to show any reader.

The one renderer of instructions: the console's preview and the reading page both call `render_instructions`,
so what an admin previews is what readers see. The output goes into reader pages, so it must never pass
through unsanitised: Markdown may carry raw HTML, which nh3 reduces to a small allow-list.
"""

from __future__ import annotations

from functools import lru_cache

import markdown as markdown_lib
import nh3

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "em", "h2", "h3", "h4", "hr", "i", "img",
    "li", "ol", "p", "pre", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "abbr": {"title"}}
MAX_MARKDOWN_CHARS = 20_000


def preview_instructions(text: str) -> str:
    """Return the HTML readers will see for a draft, or raise ValueError when it is longer than the limit."""
    if len(text) > MAX_MARKDOWN_CHARS:
        raise ValueError(f"instructions are {len(text)} characters; the limit is {MAX_MARKDOWN_CHARS}")
    return render_instructions(text)


@lru_cache(maxsize=128)
def render_instructions(text: str) -> str:
    """Return sanitised HTML for the Markdown text (links get rel="noopener noreferrer").

    Cached per process: every task list and next case shows the instructions.
    """
    html = markdown_lib.markdown(text, extensions=["tables", "sane_lists"], output_format="html")
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )
