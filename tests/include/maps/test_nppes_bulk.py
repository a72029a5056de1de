"""NPPES bulk preload on the tiny sandbox's real bundles and the real test PostgreSQL.

The bundles are extracted with the download code's own extractor into the download layout
(`raw/nppes/{monthly,weekly}/<bundle>/`); the wanted NPIs are the spending parquet's. The key check:
a bulk-derived result equals what the sandbox NPI Registry API answers for the same NPI, apart from
the documented differences (include/maps/nppes_bulk.py docstring).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.download.archives import extract_zip
from include.maps import cache, nppes_bulk
from include.maps.nppes_bulk import NpiSet, NppesBulkError, api_phone, find_bulk_files, iso_date, preload
from include.sandbox import core
from include.sandbox import providers as pv

SEED = 1
API_KEYS = ("number", "enumeration_type", "basic", "addresses", "practiceLocations", "taxonomies", "identifiers",
            "other_names", "endpoints")


# ---------------------------------------------------------------------------------------------- fixtures


def extract_layout(site_nppes: Path, nppes_root: Path) -> Path:
    """The NPPES zips extracted as download_nppes_bundle leaves them: raw/nppes/<kind>/<zip stem>/."""
    for z in sorted(site_nppes.glob("NPPES_Data_Dissemination_*_V2.zip")):
        kind = "weekly" if "_Weekly_" in z.name else "monthly"
        extract_zip(z, nppes_root / kind / z.name.removesuffix(".zip"))
    return nppes_root


@pytest.fixture(scope="module")
def nppes_root(tiny_sandbox, tmp_path_factory) -> Path:
    return extract_layout(tiny_sandbox / core.SITE / "nppes", tmp_path_factory.mktemp("data") / "raw" / "nppes")


@pytest.fixture(scope="module")
def universe(tiny_sandbox) -> dict:
    manifest = json.loads((tiny_sandbox / "manifest.json").read_text())
    spending = manifest["scale"]["spending_npis"]
    table = pq.read_table(tiny_sandbox / core.SITE / core.MEDICAID_PATH,
                          columns=["BILLING_PROVIDER_NPI_NUM", "SERVICING_PROVIDER_NPI_NUM"])
    npis = {n for col in table.columns for n in col.to_pylist() if n}
    by_npi = {}
    for i in range(spending):
        category = pv.category_of(SEED, i, spending)
        p = pv.provider(SEED, i, spending, version=int(category == "weekly_update"))
        if p.npi in npis:
            by_npi[p.npi] = (category, p)
    return {"spending": spending, "wanted": npis, "providers": by_npi, "manifest": manifest}


@pytest.fixture(scope="module")
def taxonomy_desc(tiny_sandbox) -> dict[str, str]:
    return nppes_bulk.load_taxonomy_descriptions(next((tiny_sandbox / core.SITE).rglob("nucc_taxonomy_251.csv")))


def cache_rows(pg) -> dict[str, tuple]:
    rows = pg.execute("SELECT npi, status, source, url, request_params, api_run_id, requested_at_utc, error_message, "
                      "response_json FROM maps.npi_cache").fetchall()
    pg.commit()
    return {r[0]: tuple(r[1:]) for r in rows}


def comparable(result: dict) -> dict:
    """The API keys of a result, minus what bulk documents it cannot reproduce: other-name `type` (bulk
    spells out the NPPES code value; the sandbox API says "Other Name" for every code)."""
    out = {k: result.get(k) for k in API_KEYS}
    out["other_names"] = [{k: v for k, v in o.items() if k != "type"} for o in out["other_names"] or []]
    return out


# ---------------------------------------------------------------------------------------------- files


def test_find_bulk_files_picks_newest_monthly_and_newer_weeklies(nppes_root, tmp_path):
    files = find_bulk_files(nppes_root)
    assert files.monthly.name == "npidata_pfile_20050523-20261110.csv"
    assert files.monthly.othername.name == "othername_pfile_20050523-20261110.csv"
    assert files.monthly.pl.name == "pl_pfile_20050523-20261110.csv"
    assert files.monthly.endpoint.name == "endpoint_pfile_20050523-20261110.csv"
    assert [b.name for b in files.weekly] == ["npidata_pfile_20261109-20261115.csv",
                                              "npidata_pfile_20261116-20261122.csv"]
    assert [b.pl.name for b in files.weekly] == ["pl_pfile_20261109-20261115.csv", "pl_pfile_20261116-20261122.csv"]

    # an older monthly, a weekly from before the cut, a staging folder and a _fileheader twin are ignored
    root = tmp_path / "nppes"
    shutil.copytree(nppes_root, root)
    old = root / "monthly" / "NPPES_Data_Dissemination_October_2026_V2"
    old.mkdir()
    (old / "npidata_pfile_20050523-20261012.csv").write_text('"NPI","Entity Type Code"\r\n')
    early = root / "weekly" / "NPPES_Data_Dissemination_110226_110826_Weekly_V2"
    early.mkdir()
    (early / "npidata_pfile_20261102-20261108.csv").write_text('"NPI","Entity Type Code"\r\n')
    staging = root / "monthly" / ".NPPES_Data_Dissemination_December_2026_V2.partial"
    staging.mkdir()
    (staging / "npidata_pfile_20050523-20261210.csv").write_text('"NPI"\r\n')
    again = find_bulk_files(root)
    assert again.monthly.name == files.monthly.name
    assert [b.name for b in again.weekly] == [b.name for b in files.weekly]
    assert again.monthly.othername is not None  # side members of the chosen bundle only

    # a newer monthly wins, and a weekly that ends before its cut drops out
    new = root / "monthly" / "NPPES_Data_Dissemination_December_2026_V2"
    new.mkdir()
    (new / "npidata_pfile_20050523-20261116.csv").write_text('"NPI","Entity Type Code"\r\n')
    newest = find_bulk_files(root)
    assert newest.monthly.main == new / "npidata_pfile_20050523-20261116.csv"
    assert newest.monthly.pl is None
    assert [b.name for b in newest.weekly] == ["npidata_pfile_20261116-20261122.csv"]

    with pytest.raises(NppesBulkError, match="no extracted monthly") as exc:
        find_bulk_files(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(exc.value)


# ---------------------------------------------------------------------------------------------- preload


def test_preload_resolves_exactly_the_bulk_npis_like_the_api(maps_db, nppes_root, universe, taxonomy_desc):
    files = find_bulk_files(nppes_root)
    stats = preload(maps_db, files, wanted=universe["wanted"], batch_rows=37, api_run_id="run-1",
                    taxonomy_descriptions=taxonomy_desc)
    rows = cache_rows(maps_db)
    providers = universe["providers"]
    in_bulk = {npi for npi, (cat, _p) in providers.items() if cat in pv.IN_MONTHLY | pv.IN_WEEKLY}
    assert in_bulk and set(rows) == in_bulk  # every bulk NPI, and zero others
    assert {(r[0], r[1]) for r in rows.values()} == {("found", "bulk")}

    weekly_names = {b.name for b in files.weekly}
    by_category: dict[str, int] = {}
    for npi, (_status, _source, url, params, run_id, requested, error, payload) in rows.items():
        category, p = providers[npi]
        by_category[category] = by_category.get(category, 0) + 1
        assert (url, run_id, requested, error) == (None, "run-1", None, None)
        assert payload["result_count"] == 1 and payload["source"] == "nppes_bulk"
        assert params == {"source_file": payload["file"]}
        result = payload["results"][0]
        expected = pv.api_result(p)
        if category == "deactivated":
            # only the NPI and the deactivation date are in the file
            assert result["basic"] == {"status": "D", "deactivation_date": expected["basic"]["deactivation_date"]}
            assert result["enumeration_type"] is None
            assert all(result[k] == [] for k in ("addresses", "practiceLocations", "taxonomies", "identifiers",
                                                 "other_names", "endpoints"))
            continue
        assert comparable(result) == comparable(expected), npi
        # what the sandbox API has and bulk cannot: the epochs
        assert set(expected) - set(result) == {"created_epoch", "last_updated_epoch"}
        if category in pv.IN_WEEKLY:
            assert payload["file"] in weekly_names
        else:
            assert payload["file"] == files.monthly.name

    # every side member's join was exercised (the comparison above covered them)
    filled = {k: sum(1 for r in rows.values() if r[7]["results"][0][k])
              for k in ("practiceLocations", "endpoints", "other_names", "identifiers")}
    assert all(filled.values()), filled
    assert any(len(r[7]["results"][0]["taxonomies"]) > 1 for r in rows.values())

    # weekly_update NPIs carry the weekly revision, which differs from the monthly one
    updates = [npi for npi, (cat, _p) in providers.items() if cat == "weekly_update"]
    assert updates
    for npi in updates:
        _cat, p = providers[npi]
        monthly = pv.provider(SEED, p.index, universe["spending"], version=0)
        basic = rows[npi][7]["results"][0]["basic"]
        assert basic["last_updated"] == pv._iso(p.last_update_date) != pv._iso(monthly.last_update_date)

    # "UNKNOWN" (a planted spending defect) is no NPI and is not looked for
    assert stats.wanted == len({n for n in universe["wanted"] if re.fullmatch(r"[1-9][0-9]{9}", n)})
    assert stats.wanted == len(universe["wanted"]) - 1
    assert stats.wanted_found == len(in_bulk)
    assert stats.deactivated == by_category["deactivated"]
    assert stats.replaced_by_weekly == by_category["weekly_update"]
    counts = universe["manifest"]["counts"]
    assert stats.rows_read[files.monthly.name] == counts["nppes.monthly_rows"]  # filler rows read and dropped
    assert sum(stats.rows_read[b.name] for b in files.weekly) == counts["nppes.weekly_rows"]
    assert by_category["deactivated"] == counts["nppes.deactivated"]
    for side in ("othername", "pl", "endpoint"):
        assert getattr(files.monthly, side).name in stats.rows_read
    assert stats.batches >= 2 and stats.seconds > 0


@pytest.mark.parametrize("split", [False, True], ids=["whole-files", "chunks"])
def test_reader_process_gives_the_same_cache(maps_db, nppes_root, universe, taxonomy_desc, monkeypatch, split):
    """The reader process (what big files get; a big main file is parsed in chunks by several threads,
    which `split` forces here for every file) and the in-process reader write identical rows."""
    files = find_bulk_files(nppes_root)
    threaded = preload(maps_db, files, wanted=universe["wanted"], taxonomy_descriptions=taxonomy_desc,
                       reader="thread", block_size=16_384)
    expected = cache_rows(maps_db)
    maps_db.execute("TRUNCATE maps.npi_cache")
    maps_db.commit()
    if split:
        monkeypatch.setattr(nppes_bulk, "CHUNK_BYTES", 20_000)
        monkeypatch.setattr(nppes_bulk, "PARSE_THREADS", 3)
    separate = preload(maps_db, files, wanted=universe["wanted"], taxonomy_descriptions=taxonomy_desc,
                       reader="process", block_size=16_384)
    assert (threaded.reader, separate.reader) == ("thread", "process")
    assert cache_rows(maps_db) == expected
    assert separate.rows_read == threaded.rows_read
    assert (separate.wanted_found, separate.replaced_by_weekly, separate.deactivated) == \
        (threaded.wanted_found, threaded.replaced_by_weekly, threaded.deactivated)


def test_preload_defaults_to_the_wanted_table_and_is_idempotent(maps_db, nppes_root, universe, taxonomy_desc):
    cache.replace_wanted(maps_db, "npi", [(n, core.is_valid_npi(n)) for n in sorted(universe["wanted"])])
    files = find_bulk_files(nppes_root)
    first = preload(maps_db, files, taxonomy_descriptions=taxonomy_desc)
    before = cache_rows(maps_db)
    assert first.wanted == sum(core.is_valid_npi(n) for n in universe["wanted"])  # invalid NPIs are not looked for
    assert len(before) == first.wanted_found > 0
    second = preload(maps_db, files, taxonomy_descriptions=taxonomy_desc)
    assert cache_rows(maps_db) == before
    assert (second.wanted_found, second.deactivated, second.replaced_by_weekly) == \
        (first.wanted_found, first.deactivated, first.replaced_by_weekly)
    # what the API step is left with: api_only, nowhere (the invalid ones are the resolver's to report)
    left = {universe["providers"][n][0] for n in cache.pending(maps_db, "npi") if n in universe["providers"]}
    assert left <= {"api_only", "nowhere", "invalid"}


def test_without_taxonomy_descriptions_desc_is_left_out(maps_db, nppes_root, universe):
    files = find_bulk_files(nppes_root)
    bulk = [n for n, (cat, _p) in universe["providers"].items() if cat == "bulk"][:20]
    stats = preload(maps_db, files, wanted=bulk)
    assert stats.wanted_found == len(bulk)
    for _status, *_rest, payload in cache_rows(maps_db).values():
        for t in payload["results"][0]["taxonomies"]:
            assert set(t) == {"code", "taxonomy_group", "state", "license", "primary"}


def test_empty_wanted_set_writes_nothing(maps_db, nppes_root):
    stats = preload(maps_db, find_bulk_files(nppes_root), wanted=[])
    assert stats.wanted_found == 0 and cache_rows(maps_db) == {}


# ---------------------------------------------------------------------------------------------- errors


def copy_bundle(nppes_root: Path, dest: Path) -> Path:
    """Only the monthly bundle, in a fresh layout."""
    src = find_bulk_files(nppes_root).monthly.main.parent
    target = dest / "monthly" / src.name
    shutil.copytree(src, target)
    return target


def rewrite(path: Path, transform) -> None:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    rows = transform(rows)
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)


def test_missing_required_column_names_the_file(maps_db, nppes_root, universe, tmp_path):
    folder = copy_bundle(nppes_root, tmp_path / "nppes")
    files = find_bulk_files(tmp_path / "nppes")

    def without_enumeration_date(rows):
        drop = rows[0].index("Provider Enumeration Date")
        return [r[:drop] + r[drop + 1:] for r in rows]

    rewrite(files.monthly.main, without_enumeration_date)
    with pytest.raises(NppesBulkError, match="missing required column.*'Provider Enumeration Date'") as exc:
        preload(maps_db, files, wanted=universe["wanted"])
    assert str(files.monthly.main) in str(exc.value)
    assert cache_rows(maps_db) == {}

    # a side member without its NPI column is refused too, before anything is written
    main = folder / files.monthly.name
    shutil.copy(nppes_root / "monthly" / folder.name / files.monthly.name, main)
    rewrite(files.monthly.pl, lambda rows: [["Provider Number", *rows[0][1:]], *rows[1:]])
    with pytest.raises(NppesBulkError, match="pl_pfile: missing required column.*'NPI'") as exc:
        preload(maps_db, files, wanted=universe["wanted"])
    assert str(files.monthly.pl) in str(exc.value)
    assert cache_rows(maps_db) == {}


def test_malformed_row_names_file_and_line(maps_db, nppes_root, universe, tmp_path):
    copy_bundle(nppes_root, tmp_path / "nppes")
    files = find_bulk_files(tmp_path / "nppes")
    rewrite(files.monthly.main, lambda rows: [*rows[:9], ["1234567893", "1", "only three"], *rows[9:]])
    with pytest.raises(NppesBulkError, match="malformed row.*Expected 330 columns, got 3") as exc:
        preload(maps_db, files, wanted=universe["wanted"], batch_rows=5)
    assert exc.value.source == str(files.monthly.main)
    assert exc.value.line == 10  # header is line 1; the bad row was written 10th
    assert "line 10" in str(exc.value)


def test_malformed_row_in_a_later_chunk_names_its_line(maps_db, nppes_root, universe, tmp_path, monkeypatch):
    """A big main file is parsed in chunks (byte ranges) by several threads: a bad row in a later chunk
    still gets the file's own line number (the lines before its chunk are counted on that error path)."""
    copy_bundle(nppes_root, tmp_path / "nppes")
    files = find_bulk_files(tmp_path / "nppes")
    with files.monthly.main.open(newline="", encoding="utf-8") as f:
        rows = len(list(csv.reader(f)))
    bad_at = rows - 5  # in one of the last chunks
    rewrite(files.monthly.main, lambda rows: [*rows[:bad_at - 1], ["1234567893", "1", "only three"], *rows[bad_at - 1:]])
    monkeypatch.setattr(nppes_bulk, "CHUNK_BYTES", 20_000)
    monkeypatch.setattr(nppes_bulk, "PARSE_THREADS", 3)
    with pytest.raises(NppesBulkError, match="malformed row.*Expected 330 columns, got 3") as exc:
        preload(maps_db, files, wanted=universe["wanted"], reader="process", block_size=16_384)
    assert exc.value.source == str(files.monthly.main)
    assert exc.value.line == bad_at


def test_malformed_row_in_a_later_block_keeps_the_batches_before_it(maps_db, nppes_root, universe, tmp_path):
    """Small blocks: the bad row is met by the threaded reader after rows were already upserted; the
    line is found by a serial re-read, and what was written is correct (bulk rows of earlier lines)."""
    copy_bundle(nppes_root, tmp_path / "nppes")
    files = find_bulk_files(tmp_path / "nppes")
    rewrite(files.monthly.main, lambda rows: [*rows[:400], ["1234567893", "1", "only three"], *rows[400:]])
    with files.monthly.main.open(newline="", encoding="utf-8") as f:
        before = {r[0] for r in list(csv.reader(f))[1:400]}
    for reader in ("thread", "process"):
        with pytest.raises(NppesBulkError, match="malformed row") as exc:
            preload(maps_db, files, wanted=universe["wanted"], batch_rows=5, block_size=16_384, reader=reader)
        assert exc.value.source == str(files.monthly.main) and exc.value.line == 401
        rows = cache_rows(maps_db)
        assert rows and set(rows) <= before
        assert {(r[0], r[1]) for r in rows.values()} == {("found", "bulk")}


def test_text_that_is_not_utf8_is_a_malformed_row(maps_db, nppes_root, universe, tmp_path):
    """Only the NPI column of every row is converted (the other columns of the wanted rows only), yet a
    value that is not UTF-8 in any row still stops the run with its file and line."""
    copy_bundle(nppes_root, tmp_path / "nppes")
    files = find_bulk_files(tmp_path / "nppes")
    lines = files.monthly.main.read_bytes().split(b"\r\n")
    assert lines[500].split(b",")[0].strip(b'"').decode() not in universe["wanted"]  # a filler provider
    lines[500] = lines[500].replace(b'","', b'","\xff', 1)
    files.monthly.main.write_bytes(b"\r\n".join(lines))
    with pytest.raises(NppesBulkError, match="malformed row: a value is not UTF-8") as exc:
        preload(maps_db, files, wanted=universe["wanted"], block_size=16_384)
    assert exc.value.source == str(files.monthly.main) and exc.value.line == 501


def test_empty_lines_and_cr_line_ends_read_the_same(maps_db, nppes_root, universe, taxonomy_desc, tmp_path):
    """A piece with an empty line is parsed whole; a file whose lines end with CR alone is read plainly:
    both give the cache the file with ordinary line ends gives."""
    caches = {}
    for name in ("as_is", "empty_line", "cr"):
        maps_db.execute("TRUNCATE maps.npi_cache")
        maps_db.commit()
        copy_bundle(nppes_root, tmp_path / name)
        files = find_bulk_files(tmp_path / name)
        lines = files.monthly.main.read_bytes().split(b"\r\n")
        if name == "empty_line":
            lines.insert(201, b"")
        files.monthly.main.write_bytes((b"\r" if name == "cr" else b"\r\n").join(lines))
        stats = preload(maps_db, files, wanted=universe["wanted"], taxonomy_descriptions=taxonomy_desc,
                        block_size=16_384)
        caches[name] = cache_rows(maps_db)
        assert stats.rows_read[files.monthly.name] == universe["manifest"]["counts"]["nppes.monthly_rows"]
    assert len(caches["as_is"]) > 100
    assert caches["empty_line"] == caches["as_is"]
    assert caches["cr"] == caches["as_is"]


def test_a_failing_database_is_reported_not_hung(db_conninfo, nppes_root, universe):
    import psycopg

    conn = psycopg.connect(db_conninfo)
    conn.close()
    with pytest.raises(psycopg.OperationalError):
        preload(conn, find_bulk_files(nppes_root), wanted=universe["wanted"], batch_rows=10)


# ---------------------------------------------------------------------------------------------- rare values


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """Replace the data rows of an NPPES CSV (its own header kept; columns not given are empty)."""
    with path.open(newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(
            [header, *([r.get(c, "") for c in header] for r in rows)])


def test_rare_values_come_out_as_the_api_shapes_them(maps_db, nppes_root, tmp_path):
    """Quotes, backslashes, control characters, other scripts, foreign addresses, unknown codes,
    reactivation, side rows replacing the main file's other name: the JSON is built column-wise as
    text, so each of these is checked against the API shape written out by hand."""
    copy_bundle(nppes_root, tmp_path / "nppes")
    files = find_bulk_files(tmp_path / "nppes")
    a, b, c, d = "1234567893", "1457300006", "1003000126", "1992999999"
    loc, mail = "Business Practice Location Address", "Business Mailing Address"
    write_rows(files.monthly.main, [
        {"NPI": a, "Entity Type Code": "1", "Provider First Name": 'JO"HN', "Provider Last Name (Legal Name)": "O\\B",
         "Provider Credential Text": "M.D.\tPH.D.\x01", "Is Sole Proprietor": "Y", "Provider Sex Code": "F",
         f"Provider First Line {loc}": "1 RUE", f"Provider {loc} City Name": "MONTRÉAL",
         f"Provider {loc} Country Code (If outside U.S.)": "CA", f"Provider {loc} Telephone Number": "6175551234",
         f"Provider {loc} Postal Code": "H2X", "Provider Enumeration Date": "07/06/2007",
         "Last Update Date": "2007-07-06", "Healthcare Provider Taxonomy Code_1": "207Q00000X",
         "Healthcare Provider Primary Taxonomy Switch_1": "Y", "Healthcare Provider Taxonomy Group_1": "G1",
         "Healthcare Provider Taxonomy Code_3": "XYZ", "Provider License Number_3": "L3",
         "Provider License Number State Code_3": "MA", "Other Provider Identifier_2": "77",
         "Other Provider Identifier Type Code_2": "05", "Other Provider Identifier_4": "88",
         "Other Provider Identifier Type Code_4": "42", "Provider Other First Name": "ALIAS",
         "Provider Other Last Name Type Code": "1", "Provider Other Organization Name": "ACME",
         "Provider Other Organization Name Type Code": "3"},
        {"NPI": b, "Entity Type Code": "2", "Provider Organization Name (Legal Business Name)": "CAFÉ ☕ \u2028",
         "Authorized Official Telephone Number": "8005550000", "Is Organization Subpart": "N",
         "Is Sole Proprietor": "Y", "Provider First Name": "NOT FOR ORGS", f"Provider First Line {mail}": "PO BOX 1",
         "Provider Other Organization Name": "IGNORED", "Provider Other Organization Name Type Code": "3",
         "NPI Deactivation Date": "01/01/2020", "NPI Reactivation Date": "02/01/2020"},
        {"NPI": c, "Entity Type Code": "", "NPI Deactivation Date": "03/04/2021", "NPI Reactivation Date": "01/01/2020",
         "Provider First Name": "GONE"},
        {"NPI": d, "Entity Type Code": "1", "Provider First Name": "X", "Is Sole Proprietor": "?"},
    ])
    write_rows(files.monthly.pl, [{"NPI": a, "Provider Secondary Practice Location Address- Address Line 1": "2 ST",
                                   "Provider Secondary Practice Location Address- Telephone Number": "６１７５５５１２３４",
                                   "Provider Secondary Practice Location Address- Telephone Extension": "12",
                                   "Provider Secondary Practice Location Address- Fax Number": "617555123"}])
    write_rows(files.monthly.endpoint, [{"NPI": b, "Endpoint Type": "FHIR", "Endpoint": "https://x/\"y\"",
                                         "Affiliation Address Country": "DE"},
                                        {"NPI": b, "Endpoint Type": "DIRECT", "Endpoint": "b@x.org"}])
    write_rows(files.monthly.othername, [{"NPI": b, "Provider Other Organization Name": "SIDE NAME",
                                          "Provider Other Organization Name Type Code": "9"}])
    stats = preload(maps_db, files, wanted=[a, b, c, d], taxonomy_descriptions={"207Q00000X": 'Family "Medicine"'})
    got = {npi: row[7]["results"][0] for npi, row in cache_rows(maps_db).items()}
    assert (stats.wanted_found, stats.deactivated) == (4, 1)

    us = {"country_code": "US", "country_name": "United States", "address_type": "DOM"}
    assert got[a] == {
        "enumeration_type": "NPI-1", "number": a,
        "basic": {"first_name": 'JO"HN', "last_name": "O\\B", "credential": "M.D.\tPH.D.\x01", "sole_proprietor": "YES",
                  "sex": "F", "enumeration_date": "2007-07-06", "last_updated": "2007-07-06", "status": "A"},
        "addresses": [{"country_code": "CA", "address_type": "FGN", "address_1": "1 RUE", "address_2": "",
                       "city": "MONTRÉAL", "state": "", "postal_code": "H2X", "telephone_number": "617-555-1234",
                       "address_purpose": "LOCATION"}],
        "practiceLocations": [{**us, "address_1": "2 ST", "address_2": "", "city": "", "state": "", "postal_code": "",
                               "telephone_number": "６１７-５５５-１２３４", "telephone_extension": "12",
                               "fax_number": "617555123"}],
        "taxonomies": [{"code": "207Q00000X", "taxonomy_group": "G1", "desc": 'Family "Medicine"', "state": "",
                        "license": None, "primary": True},
                       {"code": "XYZ", "taxonomy_group": "", "state": "MA", "license": "L3", "primary": False}],
        "identifiers": [{"code": "05", "desc": "MEDICAID", "issuer": "", "identifier": "77", "state": ""},
                        {"code": "42", "desc": "Other", "issuer": "", "identifier": "88", "state": ""}],
        "endpoints": [],
        "other_names": [{"type": "Former Name", "code": "1", "first_name": "ALIAS"},
                        {"organization_name": "ACME", "code": "3", "type": "Doing Business As"}],
    }
    assert got[b] == {
        "enumeration_type": "NPI-2", "number": b,
        "basic": {"organization_name": "CAFÉ ☕ \u2028", "authorized_official_telephone_number": "800-555-0000",
                  "organizational_subpart": "NO", "status": "A"},  # reactivated after the deactivation
        "addresses": [{**us, "address_1": "PO BOX 1", "address_2": "", "city": "", "state": "", "postal_code": "",
                       "address_purpose": "MAILING"}],
        "practiceLocations": [], "taxonomies": [], "identifiers": [],
        "endpoints": [{"endpointType": "FHIR", "endpoint": 'https://x/"y"', "country_code": "DE", "address_type": "FGN"},
                      {"endpointType": "DIRECT", "endpoint": "b@x.org", **us}],
        "other_names": [{"organization_name": "SIDE NAME", "code": "9", "type": "Other Name"}],
    }
    assert got[c] == {"enumeration_type": None, "number": c, "addresses": [], "practiceLocations": [],
                      "basic": {"status": "D", "deactivation_date": "2021-03-04"}, "taxonomies": [], "identifiers": [],
                      "endpoints": [], "other_names": []}
    assert got[d]["basic"] == {"first_name": "X", "status": "A"} and got[d]["addresses"] == []


# ---------------------------------------------------------------------------------------------- helpers


def test_value_helpers():
    assert iso_date("07/06/2007") == "2007-07-06"
    assert iso_date("") == "" and iso_date("2007-07-06") == "2007-07-06"
    assert api_phone("8457940996") == "845-794-0996"
    assert api_phone("") == "" and api_phone("+44 20 7946") == "+44 20 7946"


def test_npi_set_is_exact():
    npis = NpiSet(pa.array(["1234567893", "UNKNOWN", None, "0123456789", "1234567893", "2000000001"]))
    assert len(npis) == 2  # only ten digits, the first not 0, can be an NPI
    probe = ["1234567893", "123456789", "+123456789", "0123456789", "UNKNOWN", None, "2000000001", "1234567890"]
    assert npis.mask(pa.array(probe)).to_pylist() == [True, False, False, False, False, False, True, False]
    assert npis.mask(pa.array(["1234567893", "2000000001", "9999999999"])).to_pylist() == [True, True, False]
    assert npis.mask(pa.chunked_array([["2000000001"], ["1234567893"]])).to_pylist() == [True, True]
    assert NpiSet(pa.array([], pa.string())).mask(pa.array(["1234567893"])).to_pylist() == [False]
