"""The self-contained HTML report (images embedded as base64, no external resources)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .common import Section

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #bbb}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f0f0f0}caption{caption-side:bottom;font-size:0.85em;color:#555;text-align:left;padding-top:4px}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{font-size:0.9em;color:#444}
.meta{color:#555;font-size:0.9em}nav a{margin-right:1em}"""  # noqa: E501  (one CSS rule per line, as written into the report)


def _block(b: tuple) -> str:
    kind = b[0]
    if kind == "p":
        return f"<p>{b[1]}</p>"
    if kind == "table":
        _, headers, rows, caption = b
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"
    if kind == "figure":
        _, png, caption = b
        data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
        return (
            f'<figure><img alt="{html.escape(Path(png).name)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{html.escape(Path(png).name)}.</b> {html.escape(caption)}</figcaption></figure>"
        )
    if kind == "html":
        _, raw, caption = b
        return f"<figure>{raw}<figcaption>{html.escape(caption)}</figcaption></figure>"
    raise ValueError(kind)


def render(sections: list[Section], meta: dict) -> str:
    nav = " ".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>namemodels study</title>",
        f"<style>{CSS}</style></head><body><h1>namemodels study</h1>",
        f"<p class='meta'>{meta['summary']}</p><nav>{nav}</nav>",
    ]
    for s in sections:
        parts.append(f'<h2 id="{s.key}">{html.escape(s.title)}</h2>')
        parts.extend(_block(b) for b in s.blocks)
    parts.append("</body></html>")
    return "\n".join(parts)
