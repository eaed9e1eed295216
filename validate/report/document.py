"""A tiny document model rendered twice: Markdown (figures as PNG files beside it) and a
standalone HTML page (figures embedded as base64 PNG, no external resources)."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str  # may hold **bold** and `code`


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Figure:
    file_name: str  # under figures/ beside the Markdown file
    png: bytes
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure

FIGURES_DIR = "figures"
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f0f0f0}"
    ".n{text-align:right}img{max-width:100%}"
    "code{background:#f4f4f4;padding:0 3px}figure{margin:1em 0}figcaption{font-size:0.9em;color:#444}"
)


# A number as the report prints it: 1,234  -0.5  1.2e-06  12.5%  1.03x  4.584 ms (a "-" cell means none)
_NUMBER = re.compile(r"^[-+±]?\d[\d,]*(\.\d+)?(e[-+]?\d+)?\s?(%|x|ms|us|s)?$")


def numeric_columns(table: Table) -> set[int]:
    """Columns whose every cell (other than "-") is a number: right-aligned, text columns left."""
    return {i for i in range(len(table.header))
            if any(row[i] != "-" for row in table.rows)
            and all(row[i] == "-" or _NUMBER.match(row[i]) for row in table.rows)}


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            numeric = numeric_columns(block)
            lines = ["| " + " | ".join(_md_cell(h) for h in block.header) + " |",
                     "|" + "|".join(" ---: " if i in numeric else " --- " for i in range(len(block.header))) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        else:
            out.append(f"![{block.caption}]({FIGURES_DIR}/{block.file_name})\n\n*{block.caption}*")
    return "\n\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def to_html(blocks: list[Block], title: str) -> str:
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline_html(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline_html(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            numeric = numeric_columns(block)
            attr = ['class="n"' if i in numeric else "" for i in range(len(block.header))]
            head = "".join(f"<th {a}>{_inline_html(h)}</th>".replace("<th >", "<th>")
                           for a, h in zip(attr, block.header, strict=True))
            rows = "".join(
                "<tr>" + "".join(f"<td {a}>{_inline_html(c)}</td>".replace("<td >", "<td>")
                                 for a, c in zip(attr, row, strict=True)) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            data = base64.b64encode(block.png).decode("ascii")
            alt = html.escape(block.caption)
            body.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{_inline_html(block.caption)}</figcaption></figure>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def figures(blocks: list[Block]) -> list[Figure]:
    return [b for b in blocks if isinstance(b, Figure)]
