"""CMS physician fee schedule archive (PFREV26A) and its index page, as CMS ships them: zips inside a zip,
a folder whose name ends in a space, inconsistent member case, `__MACOSX` clutter, and one corrupt
nested zip; plus the HCPCS Level II file with real descriptions.

    site/medicare/payment/.../pfrev26a          index page linking the archive (and unrelated zips)
    site/files/zip/pfrev26a-updated-01-02-2026.zip
        PFREV26A /PFREV26AR_nonQP.zip  -> PFREV26AR_nonQP/PFALL26AR_nonQP.txt (quoted CSV, no header, TRL trailer)
                                          PFREV26AR_nonQP/csv/status_code.csv (the uncleaned table the overlay replaces)
        PFREV26A /PFREV26AR_QP.ZIP     -> PFALL26AR_QP.TXT
        PFREV26A /HCPC2026_JAN_ANWEB.zip -> HCPC2026_JAN_ANWEB.csv (code, short and long descriptions)
        PFREV26A /PFREV26AR_LOCALITY.zip (corrupt)
        __MACOSX/PFREV26A /._PFREV26AR_nonQP.zip

`expected/cpt_fallback.csv` holds the rows a correct derivation must produce (after the overlays that
claimsflow ships), so download tests compare exactly.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile

from include.sandbox import codes as cu
from include.sandbox.core import CPT_INDEX_PATH, SITE, rng, zip_info

ARCHIVE_PATH = "files/zip/pfrev26a-updated-01-02-2026.zip"
# The cleaned status descriptions (the project ships the same table in include/download/manually_cleaned).
STATUS_CODES = ("A", "A", "A", "A", "R", "T", "C", "N", "B", "I")


def _status_descriptions() -> dict[str, str]:
    from include.download.cpt import SHIPPED_OVERLAYS

    with (SHIPPED_OVERLAYS / "PFREV26AR_nonQP" / "csv" / "status_code.csv").open(newline="") as f:
        return {row["Status Code"]: row["Description"] for row in csv.DictReader(f)}


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zip_info(name), data)
    return buf.getvalue()


def _pfall(rows: list[tuple[str, str, str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    for code, modifier, status in rows:
        for carrier, locality in (("01112", "05"), ("13202", "01")):
            writer.writerow(["2026", carrier, locality, code, modifier, "0000123.45", "0000098.10", "", "1", status, "2",
                             "0000000.00", "0000000.00", "9", "0000000.00", "0000000.00"])
    buf.write(f"TRL,{len(rows) * 2:08d}\r\n")
    return buf.getvalue().encode()


def generate(ctx) -> None:
    seed, m = ctx.seed, ctx.manifest
    r = rng(seed, "cpt")
    all_codes = cu.codes(seed, ctx.scale.hcpcs_codes)
    statuses = _status_descriptions()
    pfall_codes = [c for c in all_codes if c.source == "fallback_cpt"]
    l2_codes = [c for c in all_codes if c.source == "fallback_l2"] + [c for c in all_codes if c.source == "api" and r.random() < 0.3]
    expected: dict[str, tuple[str, str, str, str, str, str, str]] = {}

    nonqp_rows, qp_rows = [], []
    for c in pfall_codes:
        status = STATUS_CODES[c.index % len(STATUS_CODES)]
        short = f"CPT/HCPCS code from CMS PFS file (status {status})"
        expected[c.code] = (short, statuses[status], "", "", "", "false", "false")
        target = nonqp_rows if c.index % 3 else qp_rows
        target.append((c.code, "", status))
        if c.index % 4 == 0:
            target.append((c.code, "26", status))  # a modifier row: same code, deduplicated
    for c in l2_codes:
        expected[c.code] = (c.short_desc, c.long_desc, c.add_dt, c.act_eff_dt, c.term_dt,
                            "true" if c.obsolete else "false", "true" if c.is_noc else "false")

    dirty_status = "Status Code,Description\r\nA,Active Code.\r\nB,Bundled\r\nR,Restricted\r\n".encode("cp1252")
    l2 = io.StringIO()
    writer = csv.writer(l2, lineterminator="\r\n")
    writer.writerow(["HCPCS", "SHORT DESCRIPTION", "LONG DESCRIPTION", "ADD DT", "ACT EFF DT", "TERM DT", "OBSOLETE", "IS NOC"])
    for c in l2_codes:
        writer.writerow([c.code, c.short_desc, c.long_desc, c.add_dt, c.act_eff_dt, c.term_dt,
                         "Y" if c.obsolete else "N", "Y" if c.is_noc else "N"])

    top = "PFREV26A "  # CMS's folder name really ends in a space
    corrupt = _zip_bytes({"PFREV26AR_LOCALITY.txt": b"x" * 4096})
    corrupt = corrupt[:40] + bytes(b ^ 0x5A for b in corrupt[40:200]) + corrupt[200:]
    outer = {
        f"{top}/PFREV26AR_nonQP.zip": _zip_bytes({
            "PFREV26AR_nonQP/PFALL26AR_nonQP.txt": _pfall(nonqp_rows),
            "PFREV26AR_nonQP/csv/status_code.csv": dirty_status,
            "PFREV26AR_nonQP/md/status_code.md": b"# status code\n(uncleaned)\n",
            "PFREV26AR_nonQP/PF26PAR_nonQP.pdf": b"%PDF-1.4\n%%EOF\n",
        }),
        f"{top}/PFREV26AR_QP.ZIP": _zip_bytes({"PFALL26AR_QP.TXT": _pfall(qp_rows)}),
        f"{top}/HCPC2026_JAN_ANWEB.zip": _zip_bytes({"HCPC2026_JAN_ANWEB.csv": l2.getvalue().encode("cp1252", "replace")}),
        f"{top}/PFREV26AR_LOCALITY.zip": corrupt,
        f"__MACOSX/{top}/._PFREV26AR_nonQP.zip": b"\x00\x05\x16\x07macos resource fork",
        f"{top}/README.TXT": b"2026 National Physician Fee Schedule Relative Value File - revised\r\n",
    }
    archive = ctx.path(SITE, *ARCHIVE_PATH.split("/"))
    tmp = archive.with_name(archive.name + ".tmp")
    tmp.write_bytes(_zip_bytes(outer))
    os.replace(tmp, archive)
    m.add_file(ctx.root, archive, "cpt_archive")

    index = ctx.path(SITE, *CPT_INDEX_PATH.split("/"))
    index.write_text("\n".join([
        "<!DOCTYPE html><html><head><title>PFREV26A | CMS</title></head><body>",
        "<h1>PFREV26A</h1>",
        "<p>National Physician Fee Schedule Relative Value File, revised January 2026.</p>",
        "<ul>",
        f"<li><a href=\"/{ARCHIVE_PATH}\">PFREV26A - Updated 01/02/2026 (ZIP)</a></li>",
        "<li><a href=\"/files/zip/rvu26a-updated.zip\">RVU26A (ZIP)</a></li>",
        "<li><a href=\"/files/document/pfs-national-payment-amount-file-readme.pdf\">Read me (PDF)</a></li>",
        "</ul></body></html>", ""]), encoding="utf-8")
    m.add_file(ctx.root, index, "cpt_index")

    exp = ctx.path("expected", "cpt_fallback.csv")
    with exp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["hcpcs_code", "short_desc", "long_desc", "add_dt", "act_eff_dt", "term_dt", "obsolete", "is_noc"])
        for code in sorted(expected):
            w.writerow([code, *expected[code]])
    m.count("cpt.fallback_codes", len(expected))
    m.count("cpt.pfall_codes", len(pfall_codes))
    m.count("cpt.level2_codes", len(l2_codes))
    m.defect("cpt.corrupt_nested_zip", 1, "a nested zip whose bytes are damaged", [f"{top}/PFREV26AR_LOCALITY.zip"])
    m.defect("cpt.trailing_space_folder", 1, "the archive's top folder name ends in a space", [top])
    m.defect("cpt.mixed_case_members", 2, "members with upper-case extensions (.ZIP, .TXT)",
             [f"{top}/PFREV26AR_QP.ZIP", "PFALL26AR_QP.TXT"])
    m.defect("cpt.overlay_overrides", 1, "an uncleaned status_code.csv the shipped overlay must replace",
             ["PFREV26AR_nonQP/csv/status_code.csv"])
