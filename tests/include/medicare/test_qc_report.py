"""The HTML QC report, built from QC tables shaped like the two matviews with known rows: the numbers
in its tables are the ones computed here from those rows, every value is escaped, it parses, it is
self-contained, and an empty QC schema gives a report that says so."""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

import pytest
from psycopg import sql

from include.common.errors import DatabaseError, InvalidIdentifier
from include.medicare.qc_report import write_qc_report

EVIL_STATE = "<script>alert('x')</script>&"

ENROLLMENT_COLUMNS = """year int, state text, zip int, fips3 text, consistent_dob text, consistent_dod text,
    consistent_sex text, consistent_race text, fips3_is_approximated bool, fips3_valdiated bool, state_iso text"""
ADMISSION_COLUMNS = "year int, state text, zip int, reason text, state_iso text"

# One row per enrollment record: year, state, zip, fips3, dob, dod, sex, race, approximated, validated, iso, bene
ENROLLMENTS = [
    (2015, "MA", 2115, "025", "CONSISTENT", "NONE", "CONSISTENT", "CONSISTENT", False, True, "US-MA", "b1"),
    (2015, "MA", 2116, "025", "CONSISTENT", "NONE", "CONSISTENT", "CONSISTENT", True, True, "US-MA", "b1"),
    (2015, "MA", 2115, "025", "CONSISTENT", "CONSISTENT", "CONSISTENT", "CONSISTENT", False, True, "US-MA", "b2"),
    (2015, "MA", 2115, "025", "CONSISTENT", "NONE", "CONSISTENT", "AMBIGUOUS", False, False, "US-MA", "b3"),
    (2015, EVIL_STATE, 99999, None, "MISSING", "NONE", "CONSISTENT", "CONSISTENT", None, None, "US-XX", "b4"),
    (2016, "MA", 2115, "025", "CONSISTENT", "NONE", "CONSISTENT", "CONSISTENT", False, True, "US-MA", "b1"),
    (2016, "MA", 2115, "025", "CONSISTENT", "CONSISTENT", "CONSISTENT", "CONSISTENT", False, True, "US-MA", "b2"),
    (2016, "NY", 10001, "061", "CONSISTENT", "AMBIGUOUS", "CONSISTENT", "CONSISTENT", True, False, "US-NY", "b5"),
    (2016, "NY", 10001, "061", "CONSISTENT", "NONE", "CONSISTENT", "CONSISTENT", False, True, "US-NY", "b6"),
    (2016, "NY", 10002, "061", "CONSISTENT", "NONE", "CONSISTENT", "CONSISTENT", True, True, "US-NY", "b6"),
    (None, None, None, None, "CONSISTENT", "NONE", "AMBIGUOUS", "CONSISTENT", None, None, None, "b7"),
]
# One row per admission record: year, state, zip, reason, iso, bene (None: the key was missing)
ADMISSIONS = [
    (2015, "MA", 2115, "OK", "US-MA", "b1"),
    (2015, "MA", 2115, "OK", "US-MA", "b2"),
    (2015, "MA", 2115, "DUPLICATE", "US-MA", "b1"),
    (2015, "MA", 2116, "FOREIGN KEY", "US-MA", "b9"),
    (2015, EVIL_STATE, 99999, "FOREIGN KEY", "US-XX", "b4"),
    (2016, "MA", 2115, "OK", "US-MA", "b1"),
    (2016, "MA", 2115, "PRIMARY KEY", "US-MA", "b2"),
    (2016, "NY", 10001, "OK", "US-NY", "b5"),
    (2016, "NY", 10001, "OK", "US-NY", "b6"),
    (2016, "NY", 10002, "OK", "US-NY", "b6"),
    (None, None, None, "PRIMARY KEY", None, None),
    (None, None, None, "PRIMARY KEY", None, "b8"),
]
REASONS = ("OK", "FOREIGN KEY", "DUPLICATE", "PRIMARY KEY")


def _create_qc_tables(pg, schema: str, enrollments, admissions) -> None:
    """The matviews' shape as tables, aggregated from per-record rows the way the pipeline does it."""

    def build(table: str, columns: str, rows) -> None:
        names = [c.split()[0] for c in columns.replace("\n", " ").split(",")]
        source = sql.Identifier(schema, f"{table}_records")
        target = sql.Identifier(schema, table)
        cols = sql.SQL(", ").join(map(sql.Identifier, names))
        pg.execute(sql.SQL("CREATE TABLE {} (" + columns + ", bene_id text)").format(source))
        with pg.cursor() as cur, cur.copy(sql.SQL("COPY {} FROM STDIN").format(source)) as copy:
            for row in rows:
                copy.write_row(row)
        pg.execute(
            sql.SQL(
                "CREATE TABLE {target} AS SELECT {cols}, count(*)::bigint AS numrecords, "
                "(#hll_add_agg(hll_hash_text(bene_id)))::bigint AS numdistinctbeneficaries, "
                "hll_add_agg(hll_hash_text(bene_id)) AS bene_hll FROM {source} GROUP BY {cols}"
            ).format(target=target, cols=cols, source=source)
        )

    build("qc_enrollments", ENROLLMENT_COLUMNS, enrollments)
    build("qc_admissions", ADMISSION_COLUMNS, admissions)
    pg.commit()


class _Page(HTMLParser):
    """What the tests look at: each table's rows of cell text, the tags and attributes used."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: dict[str, int] = {}
        self.attributes: list[tuple[str, str, str | None]] = []
        self.title = ""
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in_title = False
        self._svg_depth = 0  # an SVG <title> is a tooltip, not the page title

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attributes.extend((tag, k, v) for k, v in attrs)
        self._svg_depth += tag == "svg"
        self._in_title = tag == "title" and not self._svg_depth
        if tag == "table":
            self._table = dict(attrs)["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "title":
            self._in_title = False
        self._svg_depth -= tag == "svg"

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title:
            self.title += data


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _int(n: int) -> str:
    return f"{n:,}"


def _pct(part: float, whole: float) -> str:
    return f"{part * 100.0 / whole:.1f} %"


def _label(value) -> str:
    return "(missing)" if value is None else str(value)


def _consistent(row) -> bool:
    dob, dod, sex, race = row[4:8]
    return dob == "CONSISTENT" and dod != "AMBIGUOUS" and race == "CONSISTENT" and sex == "CONSISTENT"


def _expected_enrollment_row(first: list[str], rows) -> list[str]:
    benes = {r[-1] for r in rows}
    consistent = {r[-1] for r in rows if _consistent(r)}
    return [
        *first,
        _int(len(rows)),
        _int(len(benes)),
        _pct(len(consistent), len(benes)),
        _pct(sum(1 for r in rows if r[8]), len(rows)),
        _pct(sum(1 for r in rows if r[9]), len(rows)),
    ]


def _expected_admission_row(first: list[str], rows) -> list[str]:
    benes = {r[-1] for r in rows if r[-1] is not None}
    return [
        *first,
        _int(len(rows)),
        _int(len(benes)),
        *(_pct(sum(1 for r in rows if r[3] == reason), len(rows)) for reason in REASONS),
    ]


def _groups(rows, index: int) -> list:
    """The distinct values of a column, in the report's order (NULL last)."""
    keys = {r[index] for r in rows}
    return sorted(k for k in keys if k is not None) + ([None] if None in keys else [])


@pytest.fixture
def qc_schema(pg, scratch_schema):
    _create_qc_tables(pg, scratch_schema, ENROLLMENTS, ADMISSIONS)
    return scratch_schema


def test_report_holds_the_numbers_computed_from_the_records(pg, qc_schema, tmp_path):
    path = tmp_path / "reports" / "qc.html"
    result = write_qc_report(pg, path, qc_schema=qc_schema, run_label="manual__2026-11-25")
    page = _parse(path)

    enrollment_header = [
        "Records",
        "Distinct beneficiaries (≈)",
        "% consistent beneficiaries",
        "% fips3 approximated",
        "% fips3 validated",
    ]
    by_year = [
        _expected_enrollment_row([_label(y)], [r for r in ENROLLMENTS if r[0] == y]) for y in _groups(ENROLLMENTS, 0)
    ]
    assert page.tables["enrollments-by-year"] == [
        ["Year", *enrollment_header],
        *by_year,
        _expected_enrollment_row(["All"], ENROLLMENTS),
    ]
    by_state = [
        _expected_enrollment_row(
            [_label(s), next(r[10] for r in ENROLLMENTS if r[1] == s) or ""], [r for r in ENROLLMENTS if r[1] == s]
        )
        for s in _groups(ENROLLMENTS, 1)
    ]
    assert page.tables["enrollments-by-state"] == [
        ["State", "ISO", *enrollment_header],
        *by_state,
        _expected_enrollment_row(["All", ""], ENROLLMENTS),
    ]
    # Spot-check the arithmetic above once by hand: 2015 has 5 records of 4 beneficiaries, b1 and b2
    # consistent (b3: race ambiguous, b4: dob missing).
    assert by_year[0] == ["2015", "5", "4", "50.0 %", "20.0 %", "60.0 %"]

    admission_header = [
        "Records",
        "Distinct beneficiaries (≈)",
        "% valid",
        "% foreign key",
        "% duplicate",
        "% primary key (missing data)",
    ]
    assert page.tables["admissions-by-year"] == [
        ["Year", *admission_header],
        *(_expected_admission_row([_label(y)], [r for r in ADMISSIONS if r[0] == y]) for y in _groups(ADMISSIONS, 0)),
        _expected_admission_row(["All"], ADMISSIONS),
    ]
    assert page.tables["admissions-by-state"] == [
        ["State", "ISO", *admission_header],
        *(
            _expected_admission_row(
                [_label(s), next(r[4] for r in ADMISSIONS if r[1] == s) or ""], [r for r in ADMISSIONS if r[1] == s]
            )
            for s in _groups(ADMISSIONS, 1)
        ),
        _expected_admission_row(["All", ""], ADMISSIONS),
    ]
    assert page.tables["admissions-by-year"][1] == ["2015", "5", "4", "40.0 %", "40.0 %", "20.0 %", "0.0 %"]

    all_benes = {r[-1] for r in ENROLLMENTS}
    assert result == {
        "path": str(path),
        "qc_schema": qc_schema,
        "generated_at": result["generated_at"],
        "empty": False,
        "years": [2015, 2016],
        "enrollment_records": len(ENROLLMENTS),
        "enrollment_beneficiaries": len(all_benes),
        "consistent_pct": pytest.approx(len({r[-1] for r in ENROLLMENTS if _consistent(r)}) * 100.0 / len(all_benes)),
        "fips3_approximated_pct": pytest.approx(sum(1 for r in ENROLLMENTS if r[8]) * 100.0 / len(ENROLLMENTS)),
        "fips3_validated_pct": pytest.approx(sum(1 for r in ENROLLMENTS if r[9]) * 100.0 / len(ENROLLMENTS)),
        "admission_records": len(ADMISSIONS),
        "admission_beneficiaries": len({r[-1] for r in ADMISSIONS if r[-1] is not None}),
        "valid_admissions_pct": pytest.approx(6 * 100.0 / 12),
    }
    assert "manual__2026-11-25" in path.read_text()


def test_report_is_escaped_self_contained_and_has_charts(pg, qc_schema, tmp_path):
    path = tmp_path / "qc.html"
    write_qc_report(pg, path, qc_schema=qc_schema, title='QC <b>&</b> "checks"', run_label="<img src=x>")
    text = path.read_text(encoding="utf-8")
    page = _parse(path)

    # The hostile state name and title come back as text, never as markup.
    assert "<script" not in text and "<img" not in text and "<b>" not in text
    assert page.tags.get("script", 0) == 0 and page.tags.get("img", 0) == 0 and page.tags.get("b", 0) == 0
    assert page.title == 'QC <b>&</b> "checks"'
    states = [row[0] for row in page.tables["enrollments-by-state"][1:]]
    assert EVIL_STATE in states
    assert EVIL_STATE in [row[0] for row in page.tables["admissions-by-state"][1:]]
    svg_labels = [v for tag, k, v in page.attributes if tag == "svg" and k == "aria-label"]
    assert len(svg_labels) == page.tags["svg"] == 6
    assert page.tags["rect"] > 0

    # Nothing is fetched from elsewhere: no src/href, no url(), no link/iframe/object.
    assert not [(t, k, v) for t, k, v in page.attributes if k in ("src", "href", "srcset", "action")]
    assert "url(" not in text and "@import" not in text
    assert not {"link", "iframe", "object", "embed"} & set(page.tags)


def test_report_replaces_the_old_file_atomically(pg, qc_schema, tmp_path):
    path = tmp_path / "qc.html"
    path.write_text("old report")
    write_qc_report(pg, path, qc_schema=qc_schema)
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert os.listdir(tmp_path) == ["qc.html"]  # no temporary file left behind
    assert path.stat().st_mode & 0o777 == 0o644


def test_an_unknown_reason_gets_its_own_column(pg, scratch_schema, tmp_path):
    admissions = [*ADMISSIONS, (2016, "NY", 10001, "SOMETHING ELSE", "US-NY", "b6")]
    _create_qc_tables(pg, scratch_schema, ENROLLMENTS, admissions)
    page = _parse(Path(write_qc_report(pg, tmp_path / "qc.html", qc_schema=scratch_schema)["path"]))
    header, *_, total = page.tables["admissions-by-year"]
    assert header[-1] == "% other reason"
    assert total == ["All", "13", "7", "46.2 %", "15.4 %", "7.7 %", "23.1 %", "7.7 %"]


def test_empty_views_give_a_report_that_says_no_data(pg, scratch_schema, tmp_path):
    _create_qc_tables(pg, scratch_schema, [], [])
    result = write_qc_report(pg, tmp_path / "qc.html", qc_schema=scratch_schema)
    text = (tmp_path / "qc.html").read_text()
    page = _parse(tmp_path / "qc.html")
    assert page.tables == {}
    assert "No data: both QC views are empty" in text
    assert "No data: the enrollment QC view holds no rows" in text
    assert "No data: the admission QC view holds no rows" in text
    assert {k: result[k] for k in ("empty", "years", "enrollment_records", "admission_records", "consistent_pct")} == {
        "empty": True,
        "years": [],
        "enrollment_records": 0,
        "admission_records": 0,
        "consistent_pct": None,
    }


def test_only_one_view_empty(pg, scratch_schema, tmp_path):
    _create_qc_tables(pg, scratch_schema, ENROLLMENTS, [])
    result = write_qc_report(pg, tmp_path / "qc.html", qc_schema=scratch_schema)
    page = _parse(tmp_path / "qc.html")
    assert set(page.tables) == {"enrollments-by-year", "enrollments-by-state"}
    assert "No data: the admission QC view holds no rows" in (tmp_path / "qc.html").read_text()
    assert (result["empty"], result["years"], result["admission_records"]) == (False, [2015, 2016], 0)


def test_a_missing_view_or_unsafe_schema_is_a_clear_error(pg, scratch_schema, tmp_path):
    with pytest.raises(DatabaseError, match=rf"{scratch_schema}\.qc_enrollments: .*does not exist"):
        write_qc_report(pg, tmp_path / "qc.html", qc_schema=scratch_schema)
    pg.rollback()
    with pytest.raises(InvalidIdentifier):
        write_qc_report(pg, tmp_path / "qc.html", qc_schema="medicare_qc; drop table x")
    assert not (tmp_path / "qc.html").exists()
