"""CPT/HCPCS preparation after the archives are on disk (the seed's download.sh steps, in order):

1. unpack zips recursively (`archives.extract_nested`);
2. strip trailing whitespace from folder names (CMS ships `PFREV26A /`), merging into an existing
   folder of the clean name;
3. overlay the manually cleaned lookup tables (`manually_cleaned/PFREV26AR_nonQP/{csv,md}`), which
   replace the folder's csv/ and md/ subfolders;
4. derive `cpt_hcpcs_fallback.csv` (code + descriptions) from every parsable CPT/HCPCS file.

The fallback CSV's columns and rules are the seed's, so the map builder reads either file.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from include.common.errors import DownloadError
from include.common.files import read_text
from include.download.archives import MARKER, NestedReport, extract_nested

log = logging.getLogger("claimsflow.download")

FALLBACK_NAME = "cpt_hcpcs_fallback.csv"
FALLBACK_COLUMNS = ("hcpcs_code", "short_desc", "long_desc", "add_dt", "act_eff_dt", "term_dt", "obsolete", "is_noc",
                    "source_file")
OVERLAY_FOLDER = "PFREV26AR_nonQP"
OVERLAY_EXTRA_FILES = ("PF26PAR_QP.md",)
SHIPPED_OVERLAYS = Path(__file__).resolve().parent / "manually_cleaned"

CODE_SHAPE = re.compile(r"^[A-Z0-9]{5}$")
TRUTHY = {"1", "true", "t", "yes", "y"}
# Header aliases, compared after lowercasing and dropping non-alphanumerics.
ALIASES: dict[str, tuple[str, ...]] = {
    "code": ("hcpcscode", "cptcode", "procedurecode", "billingcode", "code", "hcpcs", "cpt"),
    "short": ("shortdesc", "shortdescription", "descshort", "display"),
    "long": ("longdesc", "longdescription", "description", "desclong"),
    "add_dt": ("adddt", "adddate"),
    "act_eff_dt": ("acteffdt", "acteffdate", "effectivedate", "effectivedt"),
    "term_dt": ("termdt", "termdate", "enddate"),
    "obsolete": ("obsolete", "isobsolete"),
    "is_noc": ("isnoc", "noc"),
}


def _norm(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def normalise_code(raw: str) -> str | None:
    code = re.sub(r"\s+", "", raw or "")
    code = code.removesuffix(".0").upper()
    return code if CODE_SHAPE.match(code) else None


def has_local_source(cpt_root: Path) -> bool:
    """The seed's test: a non-empty fallback CSV, or any zip/csv/txt/tsv besides it under raw/cpt."""
    fallback = cpt_root / FALLBACK_NAME
    if fallback.is_file() and fallback.stat().st_size > 0:
        return True
    for path in cpt_root.rglob("*"):
        if path.is_file() and path.name != FALLBACK_NAME and path.suffix.lower() in {".zip", ".csv", ".txt", ".tsv"}:
            return True
    return False


def normalise_folder_names(root: Path) -> list[tuple[str, str]]:
    """Rename folders whose names end in whitespace (deepest first); merge into an existing clean one."""
    renamed = []
    for dirpath, dirnames, _files in os.walk(root, topdown=False):
        for name in dirnames:
            clean = name.rstrip()
            if clean == name or not clean:
                continue
            src, dst = Path(dirpath) / name, Path(dirpath) / clean
            if dst.exists():
                _merge(src, dst)
                shutil.rmtree(src)
            else:
                os.replace(src, dst)
            renamed.append((str(src.relative_to(root)), str(dst.relative_to(root))))
            log.info("normalised folder name %r -> %r", str(src.relative_to(root)), clean)
    return renamed


def _merge(src: Path, dst: Path) -> None:
    for item in src.iterdir():
        target = dst / item.name
        if item.is_dir():
            target.mkdir(exist_ok=True)
            _merge(item, target)
        else:
            shutil.copy2(item, target)


def apply_overlays(overlay_root: Path, cpt_root: Path) -> Path | None:
    """Replace `<PFREV26AR_nonQP>/csv` and `/md` under raw/cpt with the manually cleaned copies."""
    source = overlay_root / OVERLAY_FOLDER
    if not source.is_dir():
        log.info("no manual overlays at %s; skipped", source)
        return None
    found = sorted(p for p in cpt_root.rglob(OVERLAY_FOLDER) if p.is_dir() and not p.name.startswith("."))
    target = found[0] if found else cpt_root / "archives" / "PFREV26A" / OVERLAY_FOLDER
    for sub in ("csv", "md"):
        src = source / sub
        if not src.is_dir():
            continue
        dst = target / sub
        staging = target / f".{sub}.overlay"
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(src, staging)
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(staging, dst)
    for extra in OVERLAY_EXTRA_FILES:
        if (overlay_root / extra).is_file():
            shutil.copy2(overlay_root / extra, target / extra)
    log.info("applied manual overlays from %s to %s", source, target)
    return target


def status_descriptions(root: Path) -> dict[str, str]:
    """Status code -> description from every status_code.csv under root (the PFS lookup table)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("status_code.csv")):
        rows = list(csv.reader(io.StringIO(read_text(path))))
        if not rows:
            continue
        header = [_norm(h) for h in rows[0]]
        code_col = next((i for i, h in enumerate(header) if h in ("statuscode", "code")), None)
        desc_col = next((i for i, h in enumerate(header) if h in ("description", "longdesc", "longdescription")), None)
        if code_col is None or desc_col is None:
            continue
        for row in rows[1:]:
            if len(row) > max(code_col, desc_col) and row[code_col].strip():
                out[row[code_col].strip().upper()] = row[desc_col].strip()
    return out


@dataclass
class FallbackRow:
    code: str
    short_desc: str
    long_desc: str
    add_dt: str = ""
    act_eff_dt: str = ""
    term_dt: str = ""
    obsolete: bool = False
    is_noc: bool = False
    source_file: str = ""

    def score(self) -> tuple:
        return (bool(self.long_desc), len(self.long_desc), bool(self.short_desc), len(self.short_desc))


def _pfall_rows(path: Path, rel: str, statuses: dict[str, str]) -> Iterator[FallbackRow]:
    with path.open(newline="", encoding="latin-1") as f:
        for row in csv.reader(f):
            if not row or row[0].startswith("TRL") or len(row) < 4:
                continue
            code = normalise_code(row[3])
            if not code:
                continue
            status = row[9].strip().upper() if len(row) > 9 else ""
            short = f"CPT/HCPCS code from CMS PFS file (status {status})" if status else "CPT/HCPCS code from CMS PFS file"
            yield FallbackRow(code, short, statuses.get(status, short), source_file=rel)


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",|\t;").delimiter
    except csv.Error:
        counts = {d: sample.count(d) for d in ",|\t;"}
        return max(counts, key=lambda d: counts[d])


def _generic_rows(path: Path, rel: str) -> Iterator[FallbackRow]:
    text = read_text(path)
    delimiter = _sniff_delimiter(text[:4096])
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        return
    cols = column_positions(header)
    if has_code_and_description(cols):
        yield from fallback_rows(reader, cols, source_file=rel)


def column_positions(header: list[str], aliases: dict[str, tuple[str, ...]] = ALIASES) -> dict[str, int | None]:
    """Which column holds each field of `aliases`, headers matched loosely (None: no such column)."""
    norm = [_norm(h) for h in header]
    return {key: next((i for i, h in enumerate(norm) if h in names), None) for key, names in aliases.items()}


def has_code_and_description(cols: dict[str, int | None]) -> bool:
    return cols["code"] is not None and (cols["short"] is not None or cols["long"] is not None)


def fallback_rows(reader: Iterator[list[str]], cols: dict[str, int | None], *,
                  source_file: str | None) -> Iterator[FallbackRow]:
    """Rows of a CSV with code/description columns as FallbackRows (rows without a code or any
    description skipped); `source_file` None: taken from the file's own source_file column."""

    def cell(row: list[str], key: str) -> str:
        i = cols.get(key)
        return row[i].strip() if i is not None and i < len(row) else ""

    for row in reader:
        code = normalise_code(cell(row, "code"))
        if not code:
            continue
        short, long = cell(row, "short"), cell(row, "long")
        if not short and not long:
            continue
        yield FallbackRow(
            code, short or long, long or short, cell(row, "add_dt"), cell(row, "act_eff_dt"), cell(row, "term_dt"),
            cell(row, "obsolete").lower() in TRUTHY, cell(row, "is_noc").lower() in TRUTHY,
            cell(row, "source_file") if source_file is None else source_file,
        )


def build_fallback(cpt_root: Path, output: Path | None = None) -> int:
    """Write the fallback CSV from every parsable file under raw/cpt; returns the number of codes.
    No records: any old output is removed (the map builder then runs without a fallback)."""
    output = output or cpt_root / FALLBACK_NAME
    statuses = status_descriptions(cpt_root)
    best: dict[str, FallbackRow] = {}
    files = [p for p in cpt_root.rglob("*") if p.is_file()]
    for suffix in (".csv", ".txt", ".tsv"):  # in this order, as the seed; extensions in any case (CMS ships .TXT)
        for path in sorted(p for p in files if p.suffix.lower() == suffix):
            if path.resolve() == output.resolve() or path.name == MARKER or any(p.startswith(".") for p in path.relative_to(cpt_root).parts):
                continue
            rel = path.relative_to(cpt_root).as_posix()
            rows = _pfall_rows(path, rel, statuses) if path.name.upper().startswith("PFALL") and path.suffix.lower() == ".txt" \
                else _generic_rows(path, rel)
            try:
                for row in rows:
                    current = best.get(row.code)
                    if current is None or row.score() > current.score():
                        best[row.code] = row
            except (csv.Error, UnicodeError) as exc:
                log.warning("%s: not parsable as a CPT/HCPCS table (%s); skipped", rel, exc)
    if not best:
        output.unlink(missing_ok=True)
        log.warning("no CPT/HCPCS records found under %s; no fallback CSV", cpt_root)
        return 0
    tmp = output.with_name(output.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(FALLBACK_COLUMNS)
        for code in sorted(best):
            r = best[code]
            writer.writerow([r.code, r.short_desc, r.long_desc, r.add_dt, r.act_eff_dt, r.term_dt,
                             "true" if r.obsolete else "false", "true" if r.is_noc else "false", r.source_file])
    os.replace(tmp, output)
    log.info("wrote %s with %d codes", output, len(best))
    return len(best)


@dataclass
class CptPreparation:
    nested: NestedReport
    renamed: list[tuple[str, str]] = field(default_factory=list)
    overlay_target: str | None = None
    fallback_codes: int = 0


def prepare(cpt_root: Path, overlay_root: Path | None = SHIPPED_OVERLAYS) -> CptPreparation:
    """All four steps over raw/cpt; corrupt nested zips are reported in the result, not fatal."""
    if not cpt_root.is_dir():
        raise DownloadError("CPT folder does not exist", source=str(cpt_root))
    nested = extract_nested(cpt_root)
    renamed = normalise_folder_names(cpt_root)
    target = apply_overlays(overlay_root, cpt_root) if overlay_root else None
    count = build_fallback(cpt_root)
    return CptPreparation(nested, renamed, str(target) if target else None, count)
