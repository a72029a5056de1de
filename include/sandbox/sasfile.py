"""Write real SAS7BDAT files with flat memory: stream rows into a Stata 114 `.dta` file, then let
Debian's `readstat` 1.1.8 convert it (`readstat in.dta out.sas7bdat`: the one conversion path that
works; from `.xpt` it writes a broken file and its CSV path crashes).

pyreadstat can write `.dta` too, but only from a whole DataFrame in memory; the Stata 114 layout is a
fixed header and one packed record per row, so it is streamed here chunk by chunk.

Numbers are written as doubles; Stata's missing value becomes SAS's missing `.`. A column with the
format `%td` holds SAS day numbers (Stata and SAS share the 1960-01-01 epoch) and arrives in SAS with
a date format, as the preprocessed NSAPH files do.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATA_DOUBLE_MISSING = struct.unpack("<d", bytes.fromhex("000000000000e07f"))[0]  # Stata "."
_DOUBLE = 255


@dataclass(frozen=True)
class SasColumn:
    name: str
    kind: str  # "str" | "num" | "date"
    width: int = 8  # str only: bytes
    label: str = ""

    @property
    def stata_type(self) -> int:
        return self.width if self.kind == "str" else _DOUBLE

    @property
    def stata_format(self) -> str:
        if self.kind == "str":
            return f"%{self.width}s"
        return "%td" if self.kind == "date" else "%12.0g"


def _fixed(text: str, size: int) -> bytes:
    raw = text.encode("latin-1")[: size - 1]
    return raw + b"\0" * (size - len(raw))


class DtaWriter:
    """Stata 114 (`.dta`, little-endian) writer that takes rows in chunks; the row count is patched
    into the header on close."""

    def __init__(self, path: Path, columns: Sequence[SasColumn], label: str = "") -> None:
        if not 0 < len(columns) <= 2047:
            raise ValueError("a Stata 114 file holds 1 to 2047 variables")
        self.path = Path(path)
        self.columns = list(columns)
        self.rows = 0
        fmt = "<" + "".join(f"{c.width}s" if c.kind == "str" else "d" for c in self.columns)
        self._row = struct.Struct(fmt)
        self._file = self.path.open("wb")
        self._write_header(label)

    def _write_header(self, label: str) -> None:
        f, n = self._file, len(self.columns)
        f.write(struct.pack("<BBBBhi", 114, 2, 1, 0, n, 0))  # format, LOHI, filetype, unused, nvar, nobs
        f.write(_fixed(label, 81))
        f.write(_fixed(time.strftime("%d %b %Y %H:%M", time.gmtime(1577836800)), 18))  # fixed: deterministic bytes
        f.write(bytes(c.stata_type for c in self.columns))
        for c in self.columns:
            f.write(_fixed(c.name, 33))
        f.write(b"\0" * (2 * (n + 1)))  # sort list
        for c in self.columns:
            f.write(_fixed(c.stata_format, 49))
        f.write(b"\0" * (33 * n))  # value-label names
        for c in self.columns:
            f.write(_fixed(c.label, 81))
        f.write(b"\0" * 5)  # no expansion fields

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        pack, kinds, out = self._row.pack, [c.kind for c in self.columns], []
        for row in rows:
            values = []
            for kind, value in zip(kinds, row, strict=False):
                if kind == "str":
                    values.append((value or "").encode("latin-1"))
                else:
                    values.append(STATA_DOUBLE_MISSING if value is None else float(value))
            out.append(pack(*values))
        self._file.write(b"".join(out))
        self.rows += len(out)

    def close(self) -> None:
        self._file.seek(6)
        self._file.write(struct.pack("<i", self.rows))
        self._file.close()

    def __enter__(self) -> DtaWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def readstat_binary() -> str:
    found = shutil.which("readstat")
    if not found:
        raise RuntimeError("the `readstat` command is missing: run `make bootstrap` (it installs Debian's readstat)")
    return found


def dta_to_sas7bdat(dta: Path, target: Path) -> None:
    """Convert with the readstat CLI into a temporary name, then move into place."""
    tmp = target.with_name(target.stem + ".tmp.sas7bdat")
    tmp.unlink(missing_ok=True)
    proc = subprocess.run([readstat_binary(), str(dta), str(tmp)], capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"readstat could not convert {dta.name}: {proc.stderr.strip() or proc.stdout.strip()}")
    _pin_timestamps(tmp)
    tmp.replace(target)


# 2020-01-01 00:00 in seconds since the SAS epoch (1960-01-01)
PINNED_TIMESTAMP = 1_893_456_000.0


def _pin_timestamps(path: Path) -> None:
    """readstat stamps the conversion time into the header; pin the created/modified doubles so a
    seed always yields the same bytes. Header offsets: 164/172, shifted by 4 when byte 35 is 0x33
    (alignment byte at offset 35)."""
    with path.open("r+b") as f:
        head = f.read(256)
        shift = 4 if head[35:36] == b"\x33" else 0
        endian = "<" if head[37:38] == b"\x01" else ">"
        for offset in (164 + shift, 172 + shift):
            f.seek(offset)
            f.write(struct.pack(endian + "d", PINNED_TIMESTAMP))
