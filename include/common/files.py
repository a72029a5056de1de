"""Reading source files: text whose encoding is not declared, and checksums."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def decode_text(data: bytes) -> str:
    """UTF-8 (BOM or not), else cp1252 (what SAS and Excel on Windows write), else latin-1 (never fails)."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def read_text(path: Path) -> str:
    return decode_text(Path(path).read_bytes())


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()
