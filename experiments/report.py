"""A self-contained HTML report: the headline in words on top, then figures as tables, images and GIFs embedded
as data URIs, and every raw figure at the bottom."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from worldmodels.checkpoint import atomic_write_bytes

STYLE = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{image-rendering:pixelated;margin:4px}
.headline{font-size:1.1em;background:#f6f8fa;padding:0.5em 1em;border-radius:6px}
.headline p{margin:0.6em 0}.headline .meaning{color:#555;font-size:0.9em}"""


def data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".gif": "image/gif"}[path.suffix]
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
    return html.escape(str(v))


def table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{fmt(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def image(path: Path, width: int | None = None, alt: str = "") -> str:
    if not path.is_file():
        return f"<p><em>missing: {html.escape(path.name)}</em></p>"
    w = f' width="{width}"' if width else ""
    return f'<img src="{data_uri(path)}"{w} alt="{html.escape(alt)}">'


def write_report(path: Path, title: str, sections: list[tuple[str, str]], headline: list[dict[str, str]],
                 figures: dict[str, Any]) -> Path:
    """Write ``path``: ``headline`` (items ``{"what", "figure", "meaning"}``) on top, then ``sections`` (heading,
    html body), then ``figures`` (every raw figure) as JSON."""
    head = "".join(f"<p><b>{html.escape(h['what'])}</b>: {html.escape(h['figure'])}<br>"
                   f"<span class='meaning'>{html.escape(h['meaning'])}</span></p>" for h in headline)
    body = "".join(f"<h2>{html.escape(h)}</h2>{b}" for h, b in sections)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><div class='headline'>{head}</div>"
            f"{body}<h2>All figures</h2><pre>{html.escape(json.dumps(figures, indent=2, default=str))}</pre>"
            "</body></html>")
    atomic_write_bytes(path, page.encode())
    return path
