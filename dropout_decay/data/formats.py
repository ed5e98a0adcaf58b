"""Read documents out of the files researchers hold: .txt/.md, JSON lines, parquet, and gzip.

A text file is one document, except when it is the whole corpus: then it is cut at paragraph
breaks into documents of about `CHUNK_CHARS`, so a held-out slice of documents exists. A
JSON-lines file holds one document per line (its `text_field`), a parquet file one per row of
its `text_field` column (nanochat's FineWeb-Edu shards have `text`). Everything is streamed:
no file is held in memory whole, except a plain text document itself.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import IO, Iterator

from ..common import UsageError

CHUNK_CHARS = 50_000
KINDS = {".txt": "text", ".md": "text", ".jsonl": "jsonl", ".parquet": "parquet"}
SUPPORTED = ".txt, .md, .jsonl, .parquet (text formats also gzipped, e.g. .jsonl.gz)"
PARQUET_BATCH = 1024  # rows per read: bounds memory for shards of any size


def kind_of(path: Path) -> str | None:
    """'text', 'jsonl' or 'parquet' (gzip is seen through), or None for anything else."""
    name = path.name.lower()
    gz = name.endswith(".gz")
    kind = KINDS.get(Path(name[:-3] if gz else name).suffix)
    return None if kind == "parquet" and gz else kind


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _decode(raw: bytes, path: Path, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: {where}is not UTF-8 text (byte {e.start}); convert it or leave it out") from None


def _guarded(path: Path, rows: Iterator[str]) -> Iterator[str]:
    """Turn a damaged file (bad gzip, bad parquet, I/O error) into one line naming it."""
    try:
        yield from rows
    except UsageError:
        raise
    except (OSError, EOFError, ValueError) as e:
        raise UsageError(f"{path}: unreadable ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})") from None


def read_documents(path: Path, text_field: str = "text", whole_corpus: bool = False) -> Iterator[str]:
    """The raw documents of one file, in file order."""
    kind = kind_of(path)
    if kind == "text":
        return _guarded(path, _chunks(path) if whole_corpus else _whole(path))
    if kind == "jsonl":
        return _guarded(path, _jsonl(path, text_field))
    if kind == "parquet":
        return _guarded(path, _parquet(path, text_field))
    raise UsageError(f"{path}: unsupported file type (supported: {SUPPORTED})")


def _whole(path: Path) -> Iterator[str]:
    with _open(path) as f:
        yield _decode(f.read(), path, "")


def _chunks(path: Path) -> Iterator[str]:
    """Paragraphs gathered into documents of about CHUNK_CHARS, read line by line."""
    current: list[str] = []
    size = 0
    with _open(path) as f:
        for number, raw in enumerate(f, 1):
            line = _decode(raw, path, f"line {number} ")
            current.append(line)
            size += len(line)
            if size >= CHUNK_CHARS and not line.strip():  # cut only at a paragraph break
                yield "".join(current)
                current, size = [], 0
    if current:
        yield "".join(current)


def _jsonl(path: Path, field: str) -> Iterator[str]:
    with _open(path) as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError as e:
                raise UsageError(f"{path}: line {number} is not JSON ({e.msg}); fix or drop that line") from None
            text = row.get(field) if isinstance(row, dict) else None
            if not isinstance(text, str):
                raise UsageError(f"{path}: line {number} has no string field {field!r}; "
                                 f"pick the field with --text-field (found: {', '.join(row) if isinstance(row, dict) else type(row).__name__})")
            yield text


def _parquet(path: Path, field: str) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        shard = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise UsageError(f"{path}: not a readable parquet file ({str(e).splitlines()[0]})") from None
    schema = shard.schema_arrow
    if field not in schema.names:
        raise UsageError(f"{path}: no column {field!r} (columns: {', '.join(schema.names)}); pick one with --text-field")
    if not (pa.types.is_string(schema.field(field).type) or pa.types.is_large_string(schema.field(field).type)):
        raise UsageError(f"{path}: column {field!r} holds {schema.field(field).type}, not text")
    row = 0
    try:
        for batch in shard.iter_batches(batch_size=PARQUET_BATCH, columns=[field]):
            for text in batch.column(0).to_pylist():
                if text is None:
                    raise UsageError(f"{path}: row {row} has no {field!r} (null); drop that row or fill it")
                yield text
                row += 1
    except pa.ArrowException as e:
        raise UsageError(f"{path}: unreadable after row {row} ({str(e).splitlines()[0]})") from None
