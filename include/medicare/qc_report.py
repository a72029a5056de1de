"""The Medicare QC report a person reads: one self-contained HTML file from the two QC matviews.

`write_qc_report` queries `<qc_schema>.qc_enrollments` and `<qc_schema>.qc_admissions` (SQL in
include/sql/medicare/qc_report_*.sql) and writes tables and inline SVG charts: enrollment records and
distinct beneficiaries per year and per state, % consistent beneficiaries, % fips3 approximated /
validated, admissions per year and per state by outcome (valid, foreign key, duplicate, primary key).

The file needs nothing from the network (no scripts, fonts or style sheets from elsewhere): the
machines that read it are offline. Every value from the database is HTML-escaped, and the page's
Content-Security-Policy forbids scripts anyway. Distinct beneficiaries are HyperLogLog estimates.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from include.common.errors import DatabaseError
from include.db.postgres import sql_file, validate_identifier

DEFAULT_TITLE = "Medicare QC report"
MISSING = "(missing)"  # label of the group whose year/state is NULL: records that failed validation

# GROUPING(year, state) in the SQL files
PER_YEAR, PER_STATE, TOTAL = 1, 2, 3

OUTCOMES = (  # (column, label, colour) of the admission outcomes, in stacking order
    ("ok", "Valid", "#2e7d32"),
    ("foreign_key", "Foreign key", "#ef6c00"),
    ("duplicate", "Duplicate", "#6a1b9a"),
    ("primary_key", "Primary key (missing data)", "#c62828"),
    ("other", "Other reason", "#757575"),
)
RECORDS_COLOUR, BENES_COLOUR, CONSISTENT_COLOUR = "#1565c0", "#90caf9", "#2e7d32"
APPROX_COLOUR, VALIDATED_COLOUR = "#ef6c00", "#2e7d32"


@dataclass
class _Figures:
    """One matview's rows split by grouping level; `total` is the one all-rows row."""

    per_year: list[dict[str, Any]]
    per_state: list[dict[str, Any]]
    total: dict[str, Any]

    @property
    def empty(self) -> bool:
        return not self.total["records"]


def write_qc_report(
    conn: psycopg.Connection,
    path: Path,
    *,
    qc_schema: str = "medicare_qc",
    title: str = DEFAULT_TITLE,
    run_label: str | None = None,
) -> dict[str, Any]:
    """Write the QC report to `path` atomically and return its headline numbers.

    Only reads (in the caller's transaction, nothing is committed). The returned dict holds plain
    ints, floats, strings and lists, so it can go to XCom as is.
    """
    validate_identifier(qc_schema, "QC schema name")
    path = Path(path)
    enrollments = _query(conn, "medicare/qc_report_enrollments.sql", qc_schema, "qc_enrollments")
    admissions = _query(conn, "medicare/qc_report_admissions.sql", qc_schema, "qc_admissions")
    for row in (*admissions.per_year, *admissions.per_state, admissions.total):
        row["other"] = row["records"] - sum(row[c] for c, _, _ in OUTCOMES if c != "other")

    generated = datetime.now(UTC).replace(microsecond=0)
    document = _render(
        enrollments, admissions, qc_schema=qc_schema, title=title, run_label=run_label, generated=generated
    )
    _write_atomic(path, document)

    e_total, a_total = enrollments.total, admissions.total
    years = {r["year"] for r in (*enrollments.per_year, *admissions.per_year) if r["year"] is not None}
    return {
        "path": str(path),
        "qc_schema": qc_schema,
        "generated_at": generated.isoformat(),
        "empty": enrollments.empty and admissions.empty,
        "years": sorted(years),
        "enrollment_records": e_total["records"],
        "enrollment_beneficiaries": e_total["beneficiaries"],
        "consistent_pct": e_total["consistent_pct"],
        "fips3_approximated_pct": _share(e_total["fips3_approximated"], e_total["records"]),
        "fips3_validated_pct": _share(e_total["fips3_validated"], e_total["records"]),
        "admission_records": a_total["records"],
        "admission_beneficiaries": a_total["beneficiaries"],
        "valid_admissions_pct": _share(a_total["ok"], a_total["records"]),
    }


def _query(conn: psycopg.Connection, sql_path: str, schema: str, matview: str) -> _Figures:
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(sql_file(sql_path, schema=schema)).fetchall()
    except psycopg.Error as exc:
        raise DatabaseError(str(exc).strip(), source=f"{schema}.{matview}") from exc
    by_level: dict[int, list[dict[str, Any]]] = {PER_YEAR: [], PER_STATE: [], TOTAL: []}
    for row in rows:
        by_level[row.pop("level")].append(row)
    # The empty grouping set yields its row even when the matview is empty.
    return _Figures(by_level[PER_YEAR], by_level[PER_STATE], by_level[TOTAL][0])


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the report is meant to be read by people
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- formatting ------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _share(part: int, whole: int) -> float | None:
    return part * 100.0 / whole if whole else None


def _int(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} %"


def _label(value: Any) -> str:
    return MISSING if value is None else str(value)


def _table(table_id: str, headers: Sequence[str], rows: Sequence[Sequence[str]], footer: Sequence[str] | None) -> str:
    """An HTML table of already formatted strings; the first column is a row header."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr><th scope='row'>" + _e(r[0]) + "</th>" + "".join(f"<td>{_e(c)}</td>" for c in r[1:]) + "</tr>"
        for r in rows
    )
    foot = ""
    if footer is not None:
        foot = (
            "<tfoot><tr><th scope='row'>"
            + _e(footer[0])
            + "</th>"
            + "".join(f"<td>{_e(c)}</td>" for c in footer[1:])
            + "</tr></tfoot>"
        )
    return f"<table id='{_e(table_id)}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody>{foot}</table>"


def _legend(series: Sequence[tuple[str, str]]) -> str:
    items = "".join(f"<span><i style='background:{_e(colour)}'></i>{_e(name)}</span>" for name, colour in series)
    return f"<div class='legend'>{items}</div>"


# --- charts: inline SVG ----------------------------------------------------------------------------

Series = tuple[str, str, Sequence[float | None]]  # (name, colour, one value per label; None = unknown)


def _nice_max(value: float) -> float:
    """A round axis maximum not below `value`, so that the quarter gridlines get round labels."""
    if value <= 0:
        return 1.0
    step = 10 ** (len(str(int(value))) - 1)
    return next(f * step for f in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if f * step >= value)


def _axis_label(value: float, percent: bool) -> str:
    if percent:
        return f"{value:g} %"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


def _bars(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    caption: str,
    stacked: bool = False,
    percent: bool = False,
    horizontal: bool = False,
    fmt: Callable[[float | None], str] | None = None,
) -> str:
    """A bar chart: columns per label (years) or, `horizontal`, rows per label (states).

    Several series are drawn side by side, or on top of each other when `stacked`. Each bar carries a
    <title> (the tooltip) with its exact value.
    """
    fmt = fmt or (_pct if percent else (lambda v: _int(None if v is None else int(v))))
    values = [[v or 0.0 for v in values] for _, _, values in series]
    if stacked:
        top = max((sum(col) for col in zip(*values, strict=True)), default=0.0)
    else:
        top = max((v for vs in values for v in vs), default=0.0)
    vmax = 100.0 if percent else _nice_max(top)
    n, k = len(labels), len(series)
    parts: list[str] = []

    if horizontal:
        left, right, top_pad, plot_w = 170, 30, 24, 520
        single = stacked or k == 1
        row_h = 20 if single else 10 * k + 6
        width, plot_h = left + plot_w + right, n * row_h
        height = top_pad + plot_h + 10
        for t in range(5):
            x = left + plot_w * t / 4
            parts.append(f"<line x1='{x:.1f}' y1='{top_pad}' x2='{x:.1f}' y2='{top_pad + plot_h}' stroke='#e0e0e0'/>")
            parts.append(
                f"<text x='{x:.1f}' y='{top_pad - 8}' text-anchor='middle'>{_e(_axis_label(vmax * t / 4, percent))}</text>"
            )
        for i, label in enumerate(labels):
            y0 = top_pad + i * row_h + 3
            parts.append(
                f"<text x='{left - 6}' y='{y0 + (row_h - 6) / 2 + 4:.1f}' text-anchor='end'>{_e(label)}</text>"
            )
            offset = 0.0
            for j, (name, colour, raw) in enumerate(series):
                w = plot_w * values[j][i] / vmax
                h = row_h - 6 if single else 9
                x, y = (left + offset, y0) if stacked else (left, y0 + j * 10)
                parts.append(
                    f"<rect x='{x:.1f}' y='{y:.1f}' width='{w:.1f}' height='{h}' fill='{_e(colour)}'>"
                    f"<title>{_e(label)} — {_e(name)}: {_e(fmt(raw[i]))}</title></rect>"
                )
                if stacked:
                    offset += w
    else:
        left, right, top_pad, bottom, plot_h = 64, 16, 12, 46, 220
        slot = max(26, min(90, 760 // max(n, 1)))
        width, height = left + n * slot + right, top_pad + plot_h + bottom
        for t in range(5):
            y = top_pad + plot_h - plot_h * t / 4
            parts.append(f"<line x1='{left}' y1='{y:.1f}' x2='{left + n * slot}' y2='{y:.1f}' stroke='#e0e0e0'/>")
            parts.append(
                f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end'>{_e(_axis_label(vmax * t / 4, percent))}</text>"
            )
        bar_w = slot * 0.7 if stacked else slot * 0.7 / k
        for i, label in enumerate(labels):
            x0 = left + i * slot + slot * 0.15
            base = top_pad + plot_h
            for j, (name, colour, raw) in enumerate(series):
                h = plot_h * values[j][i] / vmax
                x = x0 if stacked else x0 + j * bar_w
                parts.append(
                    f"<rect x='{x:.1f}' y='{base - h:.1f}' width='{bar_w:.1f}' height='{h:.1f}' fill='{_e(colour)}'>"
                    f"<title>{_e(label)} — {_e(name)}: {_e(fmt(raw[i]))}</title></rect>"
                )
                if stacked:
                    base -= h
            cx, cy = left + i * slot + slot / 2, top_pad + plot_h + 14
            rotate = f" transform='rotate(-40 {cx:.1f} {cy})'" if slot < 44 else ""
            anchor = "end" if rotate else "middle"
            parts.append(f"<text x='{cx:.1f}' y='{cy}' text-anchor='{anchor}'{rotate}>{_e(label)}</text>")

    legend = _legend([(name, colour) for name, colour, _ in series]) if k > 1 else ""
    return (
        f"<figure><figcaption>{_e(caption)}</figcaption>{legend}"
        f"<svg xmlns='http://www.w3.org/2000/svg' role='img' aria-label='{_e(caption)}' width='{width:.0f}' "
        f"height='{height:.0f}' viewBox='0 0 {width:.0f} {height:.0f}' font-family='sans-serif' font-size='11' "
        f"fill='#424242'>{''.join(parts)}</svg></figure>"
    )


# --- the document ----------------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#212121;margin:2em auto;max-width:1100px;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:2em;border-bottom:2px solid #e0e0e0;padding-bottom:.2em}
.meta{color:#616161}.empty{padding:1em;background:#fff8e1;border-left:4px solid #ffb300}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}
.card{border:1px solid #e0e0e0;border-radius:6px;padding:.6em 1em;min-width:150px}
.card strong{display:block;font-size:1.4em}.card span{color:#616161;font-size:.9em}
table{border-collapse:collapse;margin:1em 0;font-variant-numeric:tabular-nums}
th,td{padding:.25em .7em;border-bottom:1px solid #eee}td{text-align:right}
thead th{background:#f5f5f5;text-align:left}tfoot th,tfoot td{font-weight:bold;border-top:2px solid #bdbdbd}
figure{margin:1.2em 0}figcaption{font-weight:600;margin-bottom:.3em}
svg{max-width:100%;height:auto}
.legend{display:flex;flex-wrap:wrap;gap:1em;font-size:.9em;margin-bottom:.3em}
.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.35em;vertical-align:-.1em}
.note{color:#616161;font-size:.9em}
"""


def _card(value: str, label: str) -> str:
    return f"<div class='card'><strong>{_e(value)}</strong><span>{_e(label)}</span></div>"


def _enrollment_cells(row: dict[str, Any], first: list[str]) -> list[str]:
    return [
        *first,
        _int(row["records"]),
        _int(row["beneficiaries"]),
        _pct(row["consistent_pct"]),
        _pct(_share(row["fips3_approximated"], row["records"])),
        _pct(_share(row["fips3_validated"], row["records"])),
    ]


def _admission_cells(row: dict[str, Any], first: list[str], with_other: bool) -> list[str]:
    outcomes = [c for c, _, _ in OUTCOMES if with_other or c != "other"]
    return [
        *first,
        _int(row["records"]),
        _int(row["beneficiaries"]),
        *(_pct(_share(row[c], row["records"])) for c in outcomes),
    ]


def _enrollment_section(fig: _Figures) -> str:
    out = ["<h2 id='enrollments'>Enrollments</h2>"]
    if fig.empty:
        out.append("<p class='empty'>No data: the enrollment QC view holds no rows.</p>")
        return "".join(out)
    numbers = [
        "Records",
        "Distinct beneficiaries (≈)",
        "% consistent beneficiaries",
        "% fips3 approximated",
        "% fips3 validated",
    ]
    total = _enrollment_cells(fig.total, ["All"])
    years = [_label(r["year"]) for r in fig.per_year]
    out.append("<h3>Per year</h3>")
    out.append(
        _table(
            "enrollments-by-year",
            ["Year", *numbers],
            [_enrollment_cells(r, [_label(r["year"])]) for r in fig.per_year],
            total,
        )
    )
    out.append(
        _bars(
            years,
            [
                ("Records", RECORDS_COLOUR, [r["records"] for r in fig.per_year]),
                ("Distinct beneficiaries (≈)", BENES_COLOUR, [r["beneficiaries"] for r in fig.per_year]),
            ],
            caption="Enrollment records and distinct beneficiaries per year",
        )
    )
    out.append(
        _bars(
            years,
            [("% consistent", CONSISTENT_COLOUR, [r["consistent_pct"] for r in fig.per_year])],
            caption="% consistent beneficiaries per year",
            percent=True,
        )
    )
    out.append(
        _bars(
            years,
            [
                (
                    "% fips3 approximated",
                    APPROX_COLOUR,
                    [_share(r["fips3_approximated"], r["records"]) for r in fig.per_year],
                ),
                (
                    "% fips3 validated",
                    VALIDATED_COLOUR,
                    [_share(r["fips3_validated"], r["records"]) for r in fig.per_year],
                ),
            ],
            caption="% of enrollment records with fips3 approximated / validated, per year",
            percent=True,
        )
    )
    out.append(
        "<p class='note'>A beneficiary is consistent when date of birth, sex and race agree across records "
        "and the date of death is not ambiguous.</p>"
    )

    states = [_label(r["state"]) for r in fig.per_state]
    out.append("<h3>Per state</h3>")
    out.append(
        _table(
            "enrollments-by-state",
            ["State", "ISO", *numbers],
            [_enrollment_cells(r, [_label(r["state"]), r["state_iso"] or ""]) for r in fig.per_state],
            _enrollment_cells(fig.total, ["All", ""]),
        )
    )
    out.append(
        _bars(
            states,
            [
                ("Records", RECORDS_COLOUR, [r["records"] for r in fig.per_state]),
                ("Distinct beneficiaries (≈)", BENES_COLOUR, [r["beneficiaries"] for r in fig.per_state]),
            ],
            caption="Enrollment records and distinct beneficiaries per state",
            horizontal=True,
        )
    )
    return "".join(out)


def _admission_section(fig: _Figures) -> str:
    out = ["<h2 id='admissions'>Inpatient admissions</h2>"]
    if fig.empty:
        out.append("<p class='empty'>No data: the admission QC view holds no rows.</p>")
        return "".join(out)
    with_other = fig.total["other"] > 0  # a reason outside the four known ones: show it rather than hide it
    outcomes = [o for o in OUTCOMES if with_other or o[0] != "other"]
    numbers = ["Records", "Distinct beneficiaries (≈)", *(f"% {label.lower()}" for _, label, _ in outcomes)]

    def stack(rows: list[dict[str, Any]]) -> list[Series]:
        return [(label, colour, [_share(r[c], r["records"]) for r in rows]) for c, label, colour in outcomes]

    out.append("<h3>Per year</h3>")
    out.append(
        _table(
            "admissions-by-year",
            ["Year", *numbers],
            [_admission_cells(r, [_label(r["year"])], with_other) for r in fig.per_year],
            _admission_cells(fig.total, ["All"], with_other),
        )
    )
    out.append(
        _bars(
            [_label(r["year"]) for r in fig.per_year],
            stack(fig.per_year),
            caption="Admission records per year by outcome (%)",
            stacked=True,
            percent=True,
        )
    )
    out.append(
        "<p class='note'>Valid: loaded into medicare.admissions. Foreign key: no enrollment of the beneficiary "
        "that year. Duplicate: a second record with the same key. Primary key: a key column is missing.</p>"
    )
    out.append("<h3>Per state</h3>")
    out.append(
        _table(
            "admissions-by-state",
            ["State", "ISO", *numbers],
            [_admission_cells(r, [_label(r["state"]), r["state_iso"] or ""], with_other) for r in fig.per_state],
            _admission_cells(fig.total, ["All", ""], with_other),
        )
    )
    out.append(
        _bars(
            [_label(r["state"]) for r in fig.per_state],
            stack(fig.per_state),
            caption="Admission records per state by outcome (%)",
            stacked=True,
            percent=True,
            horizontal=True,
        )
    )
    return "".join(out)


def _render(
    enrollments: _Figures,
    admissions: _Figures,
    *,
    qc_schema: str,
    title: str,
    run_label: str | None,
    generated: datetime,
) -> str:
    meta = f"Generated {generated.strftime('%Y-%m-%d %H:%M:%S')} UTC from schema {qc_schema}"
    if run_label:
        meta += f" — run {run_label}"
    e, a = enrollments.total, admissions.total
    missing_year = sum(r["records"] for r in (*enrollments.per_year, *admissions.per_year) if r["year"] is None)
    if enrollments.empty and admissions.empty:
        summary = "<p class='empty'>No data: both QC views are empty. Has the Medicare pipeline run?</p>"
    else:
        summary = (
            "<div class='cards'>"
            + "".join(
                [
                    _card(_int(e["records"]), "enrollment records"),
                    _card(_int(e["beneficiaries"]), "distinct beneficiaries (≈)"),
                    _card(_pct(e["consistent_pct"]), "consistent beneficiaries"),
                    _card(_int(a["records"]), "admission records"),
                    _card(_pct(_share(a["ok"], a["records"])), "valid admissions"),
                    _card(_int(missing_year), f"records with year {MISSING}"),
                ]
            )
            + "</div>"
        )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class='meta'>{_e(meta)}</p>{summary}"
        f"{_enrollment_section(enrollments)}{_admission_section(admissions)}"
        f"<p class='note'>Distinct beneficiaries are HyperLogLog estimates (about ±2 %); {_e(MISSING)} groups the "
        "records whose year or state failed validation.</p>"
        "</body></html>\n"
    )
