"""Reading knowledge files into sections of text: Markdown, plain text, JSONL, HTML and PDF.

A `Section` is a run of a document's text under one heading (Markdown or HTML), one line of a
JSONL file, or one page of a PDF; chunks never cross a section. The format comes from a file's
extension. PDF is read with pypdf, where it is installed; nothing else needs a library.

    >>> [(s.title, s.text) for s in read_sections(b"# A\\nx\\n## B\\ny\\n", "markdown")]
    [('A', '# A\\nx'), ('A > B', '## B\\ny')]
    >>> document_format("kb/faq.JSONL"), document_format("kb/notes.rst")
    ('jsonl', 'text')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser

FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".html": "html",
    ".htm": "html",
    ".jsonl": "jsonl",
    ".pdf": "pdf",
}
"""Extensions read by a format of their own; every other file is read as plain text."""


class DocumentError(ValueError):
    """A file that cannot be read as its format says (the message names the spot)."""


@dataclass(frozen=True, slots=True)
class Section:
    title: str | None  # the heading trail ("Refunds > Timing"), "page 3", or None
    text: str
    start: int = 0  # where the section starts in the document's text (in its line, for JSONL)
    line: int | None = None  # JSONL: the line it came from


def document_format(path: str) -> str:
    suffix = path[path.rfind(".") :].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return FORMATS.get(suffix, "text")


def pdf_available() -> bool:
    """Whether pypdf can be imported here (checked without importing it)."""
    import importlib.util
    import sys

    if "pypdf" in sys.modules:
        return sys.modules["pypdf"] is not None
    try:
        return importlib.util.find_spec("pypdf") is not None
    except (ImportError, ValueError):
        return False


def read_sections(data: bytes, fmt: str, column: str = "text") -> list[Section]:
    """A document's sections; `column` is the field of each JSONL line holding its text."""
    if fmt == "pdf":
        return _pdf(data)
    text = data.decode("utf-8", errors="replace")
    if fmt == "markdown":
        return markdown_sections(text)
    if fmt == "html":
        return html_sections(text)
    if fmt == "jsonl":
        return _jsonl(text, column)
    return [Section(None, text.strip(), 0)] if text.strip() else []


# -- Markdown ---------------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def markdown_sections(text: str) -> list[Section]:
    """Sections at ATX (`## Title`) and setext (`Title` over `===`) headings, outside fenced
    code and YAML front matter; each section's title is its heading trail."""
    lines = text.splitlines(keepends=True)
    heads: dict[int, tuple[int, str]] = {}  # line index -> (level, title)
    fence: str | None = None
    begin = 0  # the first line after the front matter, if the file has one
    if lines and lines[0].rstrip() == "---":
        close = next((i for i in range(1, len(lines)) if lines[i].rstrip() == "---"), None)
        begin = 0 if close is None else close + 1
    for i, line in enumerate(lines):
        bare = line.rstrip("\n")
        if i < begin:
            continue
        m = _FENCE.match(line)
        if m:
            mark = m.group(1)[0] * 3
            fence = None if fence == mark else (fence or mark)
            continue
        if fence:
            continue
        m = _ATX.match(bare)
        if m:
            heads[i] = (len(m.group(1)), m.group(2).strip())
            continue
        m = _SETEXT.match(bare)
        if m and i > 0 and lines[i - 1].strip() and i - 1 not in heads:
            heads[i - 1] = (1 if m.group(1)[0] == "=" else 2, lines[i - 1].strip())
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    starts = sorted({begin} | set(heads))
    out: list[Section] = []
    trail: list[tuple[int, str]] = []
    for n, first in enumerate(starts):
        last = starts[n + 1] if n + 1 < len(starts) else len(lines)
        if first in heads:
            level, title = heads[first]
            trail = [t for t in trail if t[0] < level] + [(level, title)]
        body = "".join(lines[first:last])
        if body.strip():
            lead = len(body) - len(body.lstrip())
            name = " > ".join(t for _, t in trail) if trail else None
            out.append(Section(name, body.strip(), offsets[first] + lead))
    return out


# -- HTML -------------------------------------------------------------------------------------

_SKIP = {"script", "style", "noscript", "template", "svg", "head"}
_BLOCK = {
    "p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header",
    "footer", "blockquote", "pre", "dd", "dt", "hr", "main", "nav", "aside", "figure",
}  # fmt: skip
_HEADING = {f"h{n}": n for n in range(1, 7)}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skip = 0
        self.sections: list[tuple[list[tuple[int, str]], list[str]]] = [([], [])]
        self.heading: tuple[int, list[str]] | None = None
        self.trail: list[tuple[int, str]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag in _HEADING and not self.skip:
            self.heading = (_HEADING[tag], [])
        elif tag in _BLOCK:
            self._text("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in _HEADING and self.heading is not None:
            level, parts = self.heading
            title = " ".join("".join(parts).split())
            self.heading = None
            self.trail = [t for t in self.trail if t[0] < level] + [(level, title)]
            self.sections.append((list(self.trail), [title, "\n"]))
        elif tag in _BLOCK:
            self._text("\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.heading is not None:
            self.heading[1].append(data)
        else:
            self._text(data)

    def _text(self, data: str) -> None:
        self.sections[-1][1].append(data)


def html_sections(text: str) -> list[Section]:
    """The visible text of an HTML page (no scripts, styles or head), in sections at its
    `h1`-`h6` headings; entities decoded, blank runs collapsed."""
    parser = _Text()
    parser.feed(text)
    parser.close()
    out, pos = [], 0
    for trail, parts in parser.sections:
        lines = [" ".join(line.split()) for line in "".join(parts).splitlines()]
        body = "\n".join(line for line in lines if line)
        if body:
            out.append(Section(" > ".join(t for _, t in trail) or None, body, pos))
            pos += len(body) + 1
    return out


# -- JSONL and PDF ----------------------------------------------------------------------------


def _jsonl(text: str, column: str) -> list[Section]:
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise DocumentError(f"line {n} is not JSON: {e.msg}") from None
        value = row.get(column) if isinstance(row, dict) else None
        if not isinstance(value, str):
            raise DocumentError(f"line {n} has no text field `{column}`")
        if value.strip():
            out.append(Section(None, value.strip(), 0, line=n))
    return out


def _pdf(data: bytes) -> list[Section]:
    try:
        import pypdf
    except ImportError:
        raise DocumentError(
            "reading PDF needs pypdf, which is not installed here: `pip install pypdf`"
        ) from None
    import io

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as e:  # noqa: BLE001 - pypdf raises many kinds for a damaged file
        raise DocumentError(f"not a readable PDF ({type(e).__name__}: {e})") from None
    out, pos = [], 0
    for n, page in enumerate(pages, start=1):
        body = page.strip()
        if body:
            out.append(Section(f"page {n}", body, pos))
        pos += len(page) + 1
    return out
