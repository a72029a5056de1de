"""NPPES download site: the monthly V2 bundle, weekly V2 bundles, the deactivation report and the
index page that links them (`site/nppes/`), as CMS publishes them.

Bundle members carry the real names (`npidata_pfile_20050523-YYYYMMDD.csv` and its `_fileheader`,
`endpoint_pfile_…`, `othername_pfile_…`, `pl_pfile_…`, a readme PDF); the main file has the real 330
columns, every value double-quoted, dates MM/DD/YYYY. Deactivated NPIs carry only the NPI and the
deactivation date. Weekly bundles hold the `weekly_update` providers (a newer row that must win) and the
`weekly_new` ones. Rows stream straight into the zip, so memory stays flat at any scale.
"""

from __future__ import annotations

import calendar
import csv
import io
import os
import shutil
import zipfile
from datetime import date, timedelta
from pathlib import Path

from include.sandbox import providers as pv
from include.sandbox.core import NPPES_INDEX_PATH, SITE, Manifest, Scale, zip_info

MONTHLY_MONTH = date(2026, 11, 1)  # the sandbox's "current" monthly bundle
COVERAGE_START = "20050523"


def npidata_header() -> list[str]:
    """The 330 columns of npidata_pfile (NPPES V2), in order."""
    mailing = "Business Mailing Address"
    practice = "Business Practice Location Address"
    head = [
        "NPI", "Entity Type Code", "Replacement NPI", "Employer Identification Number (EIN)",
        "Provider Organization Name (Legal Business Name)", "Provider Last Name (Legal Name)", "Provider First Name",
        "Provider Middle Name", "Provider Name Prefix Text", "Provider Name Suffix Text", "Provider Credential Text",
        "Provider Other Organization Name", "Provider Other Organization Name Type Code", "Provider Other Last Name",
        "Provider Other First Name", "Provider Other Middle Name", "Provider Other Name Prefix Text",
        "Provider Other Name Suffix Text", "Provider Other Credential Text", "Provider Other Last Name Type Code",
    ]
    for kind in (mailing, practice):
        head += [
            f"Provider First Line {kind}", f"Provider Second Line {kind}", f"Provider {kind} City Name",
            f"Provider {kind} State Name", f"Provider {kind} Postal Code",
            f"Provider {kind} Country Code (If outside U.S.)", f"Provider {kind} Telephone Number",
            f"Provider {kind} Fax Number",
        ]
    head += [
        "Provider Enumeration Date", "Last Update Date", "NPI Deactivation Reason Code", "NPI Deactivation Date",
        "NPI Reactivation Date", "Provider Sex Code", "Authorized Official Last Name", "Authorized Official First Name",
        "Authorized Official Middle Name", "Authorized Official Title or Position", "Authorized Official Telephone Number",
    ]
    for i in range(1, 16):
        head += [f"Healthcare Provider Taxonomy Code_{i}", f"Provider License Number_{i}",
                 f"Provider License Number State Code_{i}", f"Healthcare Provider Primary Taxonomy Switch_{i}"]
    for i in range(1, 51):
        head += [f"Other Provider Identifier_{i}", f"Other Provider Identifier Type Code_{i}",
                 f"Other Provider Identifier State_{i}", f"Other Provider Identifier Issuer_{i}"]
    head += ["Is Sole Proprietor", "Is Organization Subpart", "Parent Organization LBN", "Parent Organization TIN",
             "Authorized Official Name Prefix Text", "Authorized Official Name Suffix Text",
             "Authorized Official Credential Text"]
    head += [f"Healthcare Provider Taxonomy Group_{i}" for i in range(1, 16)]
    head.append("Certification Date")
    return head


HEADER = npidata_header()
COLUMN = {name: i for i, name in enumerate(HEADER)}
OTHERNAME_HEADER = ["NPI", "Provider Other Organization Name", "Provider Other Organization Name Type Code"]
PL_HEADER = ["NPI"] + [f"Provider Secondary Practice Location Address- {part}" for part in (
    "Address Line 1", "Address Line 2", "City Name", "State Name", "Postal Code", "Country Code (If outside U.S.)",
    "Telephone Number", "Telephone Extension", "Fax Number")]
ENDPOINT_HEADER = ["NPI", "Endpoint Type", "Endpoint Type Description", "Endpoint", "Affiliation",
                   "Endpoint Description", "Affiliation Legal Business Name", "Use Code", "Use Description",
                   "Other Use Description", "Content Type", "Content Description", "Other Content Description",
                   "Affiliation Address Line One", "Affiliation Address Line Two", "Affiliation Address City",
                   "Affiliation Address State", "Affiliation Address Country", "Affiliation Address Postal Code"]


def npidata_row(p: pv.Provider) -> list[str]:
    row = [""] * len(HEADER)
    row[COLUMN["NPI"]] = p.npi
    if p.is_deactivated:
        row[COLUMN["NPI Deactivation Date"]] = p.deactivation_date
        return row
    row[COLUMN["Entity Type Code"]] = str(p.entity_type)
    if p.entity_type == 1:
        row[COLUMN["Provider Last Name (Legal Name)"]] = p.last_name
        row[COLUMN["Provider First Name"]] = p.first_name
        row[COLUMN["Provider Middle Name"]] = p.middle_name
        row[COLUMN["Provider Credential Text"]] = p.credential
        row[COLUMN["Provider Sex Code"]] = p.sex
        row[COLUMN["Is Sole Proprietor"]] = "N"
    else:
        row[COLUMN["Provider Organization Name (Legal Business Name)"]] = p.organization_name
        last, first, title, phone = p.authorized_official
        row[COLUMN["Authorized Official Last Name"]] = last
        row[COLUMN["Authorized Official First Name"]] = first
        row[COLUMN["Authorized Official Title or Position"]] = title
        row[COLUMN["Authorized Official Telephone Number"]] = phone
        row[COLUMN["Is Organization Subpart"]] = "N"
        if p.other_names:
            row[COLUMN["Provider Other Organization Name"]] = p.other_names[0][0]
            row[COLUMN["Provider Other Organization Name Type Code"]] = p.other_names[0][1]
    for kind, a in (("Business Mailing Address", p.mailing), ("Business Practice Location Address", p.location)):
        row[COLUMN[f"Provider First Line {kind}"]] = a.line1
        row[COLUMN[f"Provider Second Line {kind}"]] = a.line2
        row[COLUMN[f"Provider {kind} City Name"]] = a.city
        row[COLUMN[f"Provider {kind} State Name"]] = a.state
        row[COLUMN[f"Provider {kind} Postal Code"]] = a.postal_code
        row[COLUMN[f"Provider {kind} Country Code (If outside U.S.)"]] = "US"
        row[COLUMN[f"Provider {kind} Telephone Number"]] = a.phone
        row[COLUMN[f"Provider {kind} Fax Number"]] = a.fax
    row[COLUMN["Provider Enumeration Date"]] = p.enumeration_date
    row[COLUMN["Last Update Date"]] = p.last_update_date
    for slot, (code, lic, state, primary) in enumerate(p.taxonomies, start=1):
        row[COLUMN[f"Healthcare Provider Taxonomy Code_{slot}"]] = code
        row[COLUMN[f"Provider License Number_{slot}"]] = lic
        row[COLUMN[f"Provider License Number State Code_{slot}"]] = state
        row[COLUMN[f"Healthcare Provider Primary Taxonomy Switch_{slot}"]] = "Y" if primary else "N"
    for slot, (ident, code, state, issuer) in enumerate(p.identifiers, start=1):
        row[COLUMN[f"Other Provider Identifier_{slot}"]] = ident
        row[COLUMN[f"Other Provider Identifier Type Code_{slot}"]] = code
        row[COLUMN[f"Other Provider Identifier State_{slot}"]] = state
        row[COLUMN[f"Other Provider Identifier Issuer_{slot}"]] = issuer
    return row


class _Member:
    """A CSV member streamed into an open zip (QUOTE_ALL like NPPES, CRLF line ends)."""

    def __init__(self, zf: zipfile.ZipFile, name: str, header: list[str]) -> None:
        self.raw = zf.open(zip_info(name, level=1), "w", force_zip64=True)
        self.text = io.TextIOWrapper(self.raw, encoding="utf-8", newline="")
        self.writer = csv.writer(self.text, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        self.writer.writerow(header)
        self.rows = 0

    def write(self, row: list[str]) -> None:
        self.writer.writerow(row)
        self.rows += 1

    def close(self) -> None:
        self.text.flush()
        self.text.detach()
        self.raw.close()


def _side_writer(path: Path, header: list[str]):
    f = path.open("w", newline="", encoding="utf-8")
    writer = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(header)
    return f, writer


def _write_bundle(path: Path, stamp: str, rows) -> dict[str, int]:
    """One V2 bundle: the four data members, their _fileheader twins and the readme. Returns row counts.
    The main member streams into the zip; the small side members stream to temp files added after it
    (a zip takes one writer at a time)."""
    tmp = path.with_name(path.name + ".tmp")
    suffix = f"{COVERAGE_START}-{stamp}" if "-" not in stamp else stamp
    side = {name: path.with_name(f".{path.name}.{name}.csv") for name in ("othername", "pl", "endpoint")}
    counts = {"othername_rows": 0, "pl_rows": 0, "endpoint_rows": 0}
    files = {}
    try:
        files = {"othername": _side_writer(side["othername"], OTHERNAME_HEADER), "pl": _side_writer(side["pl"], PL_HEADER),
                 "endpoint": _side_writer(side["endpoint"], ENDPOINT_HEADER)}
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            main = _Member(zf, f"npidata_pfile_{suffix}.csv", HEADER)
            for p in rows:
                main.write(npidata_row(p))
                if p.is_deactivated:
                    continue
                for name, code in p.other_names:
                    files["othername"][1].writerow([p.npi, name, code])
                    counts["othername_rows"] += 1
                for a in p.practice_locations:
                    files["pl"][1].writerow([p.npi, a.line1, a.line2, a.city, a.state, a.postal_code, "US", a.phone, "", a.fax])
                    counts["pl_rows"] += 1
                for kind, endpoint, use in p.endpoints:
                    files["endpoint"][1].writerow([p.npi, kind, "Direct Messaging Address", endpoint, "N", "", "", use,
                                                   "Health Information Exchange (HIE)", "", "OTHER", "Other", "", "", "",
                                                   "", "", "", ""])
                    counts["endpoint_rows"] += 1
            main.close()
            counts["rows"] = main.rows
            for f, _writer in files.values():
                f.close()
            for name, member in (("othername", "othername_pfile"), ("pl", "pl_pfile"), ("endpoint", "endpoint_pfile")):
                with side[name].open("rb") as src, \
                        zf.open(zip_info(f"{member}_{suffix}.csv", level=1), "w", force_zip64=True) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            for name, header in (("npidata_pfile", HEADER), ("othername_pfile", OTHERNAME_HEADER),
                                 ("pl_pfile", PL_HEADER), ("endpoint_pfile", ENDPOINT_HEADER)):
                buf = io.StringIO()
                csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerow(header)
                zf.writestr(zip_info(f"{name}_{suffix}_fileheader.csv", level=1), buf.getvalue())
            zf.writestr(zip_info("NPPES_Data_Dissemination_Readme_v.2.pdf", level=1),
                        b"%PDF-1.4\n% sandbox readme\n%%EOF\n")
    finally:
        for f, _writer in files.values():
            f.close()
        for p in side.values():
            p.unlink(missing_ok=True)
    os.replace(tmp, path)
    return counts


def monthly_name(month: date) -> str:
    return f"NPPES_Data_Dissemination_{calendar.month_name[month.month]}_{month.year}_V2.zip"


def weekly_weeks(month: date, count: int) -> list[tuple[date, date]]:
    """Consecutive Monday..Sunday weeks starting after the monthly cut (the month's second Monday)."""
    first_monday = month + timedelta(days=(7 - month.weekday()) % 7)
    start = first_monday + timedelta(days=7)
    return [(start + timedelta(days=7 * i), start + timedelta(days=7 * i + 6)) for i in range(count)]


def weekly_name(start: date, end: date) -> str:
    return f"NPPES_Data_Dissemination_{start:%m%d%y}_{end:%m%d%y}_Weekly_V2.zip"


def _last_day(month: date) -> date:
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])


def monthly_providers(seed: int, scale: Scale | dict, extra: int = 0):
    spending = _get(scale, "spending_npis")
    rows = _get(scale, "nppes_rows")
    for i in range(spending):
        if pv.category_of(seed, i, spending) in pv.IN_MONTHLY:
            yield pv.provider(seed, i, spending)
    for i in range(spending, max(spending, rows) + extra):
        yield pv.provider(seed, i, spending)


def _get(scale: Scale | dict, name: str):
    return scale[name] if isinstance(scale, dict) else getattr(scale, name)


def write_index(root: Path) -> Path:
    """The NPI_Files.html page: newest monthly first, then the weekly bundles newest first, plus the
    deactivation report and unrelated links (as on the real page)."""
    folder = root / SITE / "nppes"
    monthly = sorted((p for p in folder.glob("NPPES_Data_Dissemination_*_V2.zip") if "Weekly" not in p.name),
                     key=lambda p: _month_of(p.name), reverse=True)
    weekly = sorted(folder.glob("NPPES_Data_Dissemination_*_Weekly_V2.zip"), key=_week_end, reverse=True)
    deactivated = sorted(folder.glob("NPPES_Deactivated_NPI_Report_*.zip"), reverse=True)
    lines = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><title>NPPES Downloadable File</title></head><body>",
        "<h1>NPPES Downloadable File</h1>",
        "<p>Read the <a href=\"NPPES_Data_Dissemination_Readme.pdf\">Readme</a> and the "
        "<a href=\"NPPES_Data_Dissemination_CodeValues.pdf\">Code Values</a> before using the files.</p>",
        "<h2>Full Replacement Monthly NPI File</h2><ul>",
    ]
    for p in monthly:
        lines.append(f"<li><a href=\"./{p.name}\">{p.name}</a> ({_mb(p)})</li>")
    lines.append("</ul><h2>Weekly Incremental NPI Files</h2><ul>")
    for p in weekly:
        lines.append(f"<li><a href=\"./{p.name}\">{p.name}</a> ({_mb(p)})</li>")
    lines.append("</ul><h2>NPI Deactivation File</h2><ul>")
    for p in deactivated:
        lines.append(f"<li><a href=\"./{p.name}\">{p.name}</a> ({_mb(p)})</li>")
    lines += ["</ul>", "<p><a href=\"https://npiregistry.cms.hhs.gov/\">NPI Registry</a></p>", "</body></html>", ""]
    index = root / SITE / NPPES_INDEX_PATH
    tmp = index.with_name(index.name + ".tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, index)
    return index


def _month_of(name: str) -> date:
    parts = name.split("_")
    return date(int(parts[-2]), list(calendar.month_name).index(parts[-3]), 1)


def _week_end(path: Path) -> date:
    end = path.name.split("_")[-3]  # NPPES_Data_Dissemination_<MMDDYY>_<MMDDYY>_Weekly_V2.zip
    return date(2000 + int(end[4:6]), int(end[0:2]), int(end[2:4]))


def _mb(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:,.1f} MB"


def generate(ctx) -> None:
    seed, scale, m = ctx.seed, ctx.scale, ctx.manifest
    folder = ctx.path(SITE, "nppes", "x").parent
    spending = scale.spending_npis
    categories: dict[str, int] = {}
    for i in range(spending):
        c = pv.category_of(seed, i, spending)
        categories[c] = categories.get(c, 0) + 1
    for name, count in sorted(categories.items()):
        m.count(f"spending.category.{name}", count)

    cut = _last_day(MONTHLY_MONTH).replace(day=10)
    monthly = folder / monthly_name(MONTHLY_MONTH)
    counts = _write_bundle(monthly, f"{cut:%Y%m%d}", monthly_providers(seed, scale))
    m.add_file(ctx.root, monthly, "nppes_monthly", version=f"{MONTHLY_MONTH:%Y-%m}", **counts)
    m.count("nppes.monthly_rows", counts["rows"])
    m.count("nppes.deactivated", categories.get("deactivated", 0))

    weekly_ids = [i for i in range(spending) if pv.category_of(seed, i, spending) in pv.IN_WEEKLY]
    weeks = weekly_weeks(MONTHLY_MONTH, scale.weekly_files)
    weekly_rows = 0
    for w, (start, end) in enumerate(weeks):
        mine = [i for i in weekly_ids if i % len(weeks) == w]
        rows = (pv.provider(seed, i, spending, version=int(pv.category_of(seed, i, spending) == "weekly_update"))
                for i in mine)
        path = folder / weekly_name(start, end)
        wcounts = _write_bundle(path, f"{start:%Y%m%d}-{end:%Y%m%d}", rows)
        weekly_rows += wcounts["rows"]
        m.add_file(ctx.root, path, "nppes_weekly", version=f"{start:%Y-%m-%d}..{end:%Y-%m-%d}", **wcounts)
    m.count("nppes.weekly_rows", weekly_rows)

    report = folder / f"NPPES_Deactivated_NPI_Report_{cut + timedelta(days=1):%m%d%y}_V2.zip"
    tmp = report.with_name(report.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf, \
            zf.open(zip_info(f"NPPES Deactivated NPI Report {cut + timedelta(days=1):%Y%m%d}.csv"), "w") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(["NPI", "NPPES Deactivation Date"])
        for i in range(spending):
            if pv.category_of(seed, i, spending) == "deactivated":
                p = pv.provider(seed, i, spending)
                writer.writerow([p.npi, p.deactivation_date])
        text.flush()
        text.detach()
    os.replace(tmp, report)
    m.add_file(ctx.root, report, "nppes_deactivated", rows=categories.get("deactivated", 0))
    index = write_index(ctx.root)
    m.add_file(ctx.root, index, "nppes_index")


def publish_monthly(root: str | os.PathLike, year: int, month: int, new_providers: int = 5) -> Path:
    """Simulate CMS publishing another month: a new monthly bundle (the same providers plus a few new
    ones) linked from a rewritten index page. Idempotent; returns the bundle's path."""
    root = Path(root)
    manifest = Manifest.read(root)
    when = date(year, month, 1)
    path = root / SITE / "nppes" / monthly_name(when)
    if not path.exists():
        cut = when.replace(day=10)
        counts = _write_bundle(path, f"{cut:%Y%m%d}", monthly_providers(manifest.seed, manifest.scale, extra=new_providers))
        manifest.add_file(root, path, "nppes_monthly", version=f"{when:%Y-%m}", **counts)
    index = write_index(root)
    manifest.add_file(root, index, "nppes_index")
    manifest.write(root)
    return path
