"""`weeyuga report RUN_DIR --html`: run.md as one self-contained page (run.html), plots inline.

The page is rendered from run.md itself, so every section any phase kind contributes is there
without a second renderer to keep in step. Markdown goes through markdown-it-py (the CommonMark
reference implementation's Python port, already installed as rich's dependency) with raw HTML
off: everything a run folder says (handles, model names, answers quoted in failures) is text and
comes out escaped; its link check refuses javascript:, vbscript:, file: and data: links. Images
are only the report's own plots, read from the run folder and inlined as data: URIs; any other
image becomes its alt text. The page loads nothing: a Content-Security-Policy allows only inline
style and data: images, and there is no script.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; display: block; overflow-x: auto; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.5rem; text-align: left; }
th { background: #f4f4f4; } pre { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; }
img { max-width: 100%; height: auto; display: block; margin: 1rem 0 0.3rem; }
blockquote { margin: 0; padding: 0.4rem 1rem; background: #fff4e5; border-left: 4px solid #e69500; }
"""


def _inline_images(run_dir: Path, plots: list[str]) -> Any:
    """markdown-it's image rule: a plot of this report as a data: URI, anything else as its alt text."""
    allowed = {name for name in plots if "/" not in name and "\\" not in name and name.endswith(".png")}

    def image(renderer: Any, tokens: list, index: int, options: Any, env: Any) -> str:
        token = tokens[index]
        alt = html.escape("".join(child.content for child in token.children or []))
        source = token.attrGet("src") or ""
        path = run_dir / source
        if source not in allowed or not path.is_file() or path.is_symlink():
            return alt
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{alt}">'

    return image


def render_html(run_dir: Path, markdown: str, plots: list[str]) -> str:
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    parser.add_render_rule("image", _inline_images(run_dir, plots))
    title = next((line[2:] for line in markdown.splitlines() if line.startswith("# ")), "weeyuga run")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{POLICY}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"{parser.render(markdown)}</body>\n</html>\n")
