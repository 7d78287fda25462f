"""Cutting sections of text into overlapping chunks, by characters or by tokens.

Windows hold at most `size` units (characters, or tokens of the embedding model's tokenizer,
so that a chunk fits what the embedder reads) and overlap by `overlap`; a cut falls at a word
boundary where one is in reach. Chunks never cross a section (a Markdown or HTML heading, a
JSONL line, a PDF page): `llmspec.documents` makes the sections.
"""

from __future__ import annotations

from typing import Any


def chunk_text(text: str, size: int, overlap: int) -> list[tuple[int, str]]:
    """Split text into windows of at most `size` characters overlapping by `overlap`,
    preferring to cut at whitespace. Returns (start offset, chunk) pairs.

    >>> chunk_text("aaa bbb ccc ddd", size=8, overlap=4)
    [(0, 'aaa bbb'), (4, 'bbb ccc'), (8, 'ccc ddd')]
    """
    text = text.strip()
    out: list[tuple[int, str]] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = text.rfind(" ", start + 1, end + 1)
            if cut > start + overlap:
                end = cut
        piece = text[start:end].strip()
        if piece:
            out.append((start, piece))
        if end >= len(text):
            break
        nxt = max(end - overlap, start + 1)
        while nxt < end and not text[nxt - 1].isspace():
            nxt += 1  # start the next window at a word boundary
        start = nxt
    return out


def chunk_tokens(
    text: str, offsets: list[tuple[int, int]], size: int, overlap: int
) -> list[tuple[int, str]]:
    """Split text into windows of at most `size` tokens overlapping by `overlap` tokens,
    cutting between words where possible. `offsets` are the tokens' (start, end) character
    offsets in `text`, as a fast tokenizer gives them. Returns (start offset, chunk) pairs.

    >>> words = "aa bb cc dd ee"
    >>> toks = [(0, 2), (3, 5), (6, 8), (9, 11), (12, 14)]
    >>> chunk_tokens(words, toks, size=2, overlap=1)
    [(0, 'aa bb'), (3, 'bb cc'), (6, 'cc dd'), (9, 'dd ee')]
    >>> chunk_tokens("unbreakable x", [(0, 2), (2, 6), (6, 11), (12, 13)], size=2, overlap=0)
    [(0, 'unbrea'), (6, 'kable x')]
    """
    offsets = [o for o in offsets if o[1] > o[0]]
    n = len(offsets)

    def word_start(k: int) -> bool:  # token k begins a word
        return k == 0 or k >= n or offsets[k][0] > offsets[k - 1][1]

    out: list[tuple[int, str]] = []
    i = 0
    while i < n:
        j = min(i + size, n)
        if j < n:
            cut = next((k for k in range(j, i + overlap, -1) if word_start(k)), None)
            if cut is not None and cut > i:
                j = cut
        start, end = offsets[i][0], offsets[j - 1][1]
        piece = text[start:end].strip()
        if piece:
            out.append((start, piece))
        if j >= n:
            break
        nxt = max(j - overlap, i + 1)
        while nxt < j and not word_start(nxt):
            nxt += 1  # start the next window at a word
        i = nxt
    return out


def token_offsets(tokenizer: Any, text: str) -> list[tuple[int, int]]:
    """Character offsets of `text`'s tokens under a (fast, Hugging Face) tokenizer."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [tuple(o) for o in enc["offset_mapping"]]


def chunk_sections(
    sections: list[Any], size: int, overlap: int, unit: str, tokenizer: Any = None
) -> list[dict[str, Any]]:
    """The chunks of a document's sections, in order: {start, text, section (if titled), line
    (JSONL)}. `start` is the chunk's character offset in the document (for JSONL: in its line)."""
    out: list[dict[str, Any]] = []
    for s in sections:
        if unit == "tokens":
            pieces = chunk_tokens(s.text, token_offsets(tokenizer, s.text), size, overlap)
        else:
            pieces = chunk_text(s.text, size, overlap)
        for start, piece in pieces:
            chunk: dict[str, Any] = {"start": s.start + start, "text": piece}
            if s.title:
                chunk["section"] = s.title
            if s.line is not None:
                chunk["line"] = s.line
            out.append(chunk)
    return out
