"""The sandbox's Medicare files against the reference (../shared/reference/medicare_fts.md and
nsaph_medicare_model.md), and the expected counts recomputed independently from the files."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pyreadstat
import pytest

from include.sandbox.generate import generate

FTS_KEYS = ("Columns in File", "Exact File Quantity (Rows)", "Exact File Size in Bytes with 512 Blocksize")
LENGTH_KEYS = ("Exact File Record Length (Bytes in Variable Block)", "Maximum Possible Record Length")


def parse_fts(path: Path) -> tuple[dict[str, str], list[dict[str, object]]]:
    """A small independent reading of the FTS shape the reference describes (7 dash groups)."""
    lines = path.read_text(encoding="ascii").splitlines()
    meta: dict[str, str] = {}
    sep = next(i for i, line in enumerate(lines) if line.startswith("---") and "-" * 18 in line)
    for line in lines[:sep]:
        if ":" in line:
            key, value = line.split(":", 1)
            meta[key.strip()] = value.strip()
    groups = lines[sep].split(" ")
    assert len(groups) == 7, f"{path.name}: separator has {len(groups)} groups"
    cols = []
    for line in lines[sep + 1:]:
        if not line.strip() or line.startswith("Note:") or "End of Document" in line:
            break
        tokens = line.split()
        # the description is free text; the first six fields never contain spaces here
        cols.append({"order": int(tokens[0]), "long": tokens[1], "short": tokens[2], "type": tokens[3],
                     "start": int(tokens[4]), "width": tokens[5]})
    return meta, cols


def widths(cols) -> list[int]:
    return [int(str(c["width"]).split(".")[0]) for c in cols]


@pytest.fixture(scope="module")
def expected(tiny_sandbox) -> dict[int, dict]:
    out = {}
    for p in (tiny_sandbox / "expected").glob("medicare_*.json"):
        out[int(p.stem.split("_")[1])] = json.loads(p.read_text())
    return out


def test_years_and_layout_on_disk(tiny_sandbox, expected):
    root = tiny_sandbox / "restricted" / "medicare"
    assert sorted(expected) == [2005, 2010, 2011, 2015]
    assert sorted(p.name for p in root.iterdir()) == ["2005", "2010", "2011", "2015"]
    for year in (2005, 2010):
        assert [p.name for p in (root / str(year) / "denominator").iterdir()] == [f"denom_{year}.sas7bdat"]
        assert [p.name for p in (root / str(year) / "inpatient").iterdir()] == [f"medpar_{year}.sas7bdat"]
    names_2011 = sorted(p.name for p in (root / "2011").iterdir())
    assert [n for n in names_2011 if n.endswith(".fts")] == [
        "mbsf_ab_summary_res000050354_req005900_2011.fts", "mbsf_d_cmpnts_res000050354_req005900_2011.fts",
        "medpar_all_file_res000050354_req005900_2011.fts"]
    names_2015 = sorted(p.name for p in (root / "2015").iterdir())
    assert "mbsf_abcd_summary_res000050354_req005900_2015.fts" in names_2015
    assert [n for n in names_2015 if n.startswith("medpar") and n.endswith(".dat")] == [
        f"medpar_all_file_res000050354_req005900_2015_{i:03d}.dat" for i in (1, 2, 3)]
    assert not list(root.rglob("*.dta")), "the intermediate Stata files are removed"


def test_mbsf_ab_layout_is_the_real_one(tiny_sandbox):
    fts = tiny_sandbox / "restricted/medicare/2011/mbsf_ab_summary_res000050354_req005900_2011.fts"
    meta, cols = parse_fts(fts)
    assert len(cols) == 51 and sum(widths(cols)) == 119
    assert meta["Exact File Record Length (Bytes in Variable Block)"] == "119"
    assert [c["short"] for c in cols[:11]] == ["BENE_ID", "RFRNC_YR", "FIVEPCT", "EFIVEPCT", "COVSTART", "CRNT_BIC",
                                              "STATE_CD", "CNTY_CD", "BENE_ZIP", "AGE", "BENE_DOB"]
    assert cols[-1]["short"] == "HMOIND12" and cols[-1]["start"] == 119


@pytest.mark.parametrize("year", [2011, 2015])
def test_fts_describes_its_data(tiny_sandbox, expected, year):
    for kind, info in expected[year]["files"].items():
        fts = tiny_sandbox / info["fts"]
        meta, cols = parse_fts(fts)
        length_key = next(k for k in LENGTH_KEYS if k in meta)
        assert length_key == info["fts_length_key"]
        reclen = int(meta[length_key].replace(",", ""))
        assert reclen == sum(widths(cols)) == info["record_length"], kind
        assert all(k in meta for k in FTS_KEYS)
        assert int(meta["Columns in File"]) == len(cols) == info["columns"]
        starts = [1]
        for w in widths(cols)[:-1]:
            starts.append(starts[-1] + w)
        assert [c["start"] for c in cols] == starts, f"{kind}: Start is cumulative"
        assert {c["type"] for c in cols} <= {"CHAR", "NUM", "DATE"}
        # data: every line is a record; the only wrong lengths are the planted ones
        lengths = Counter()
        total_bytes = 0
        for rel, rows in info["data"].items():
            raw = (tiny_sandbox / rel).read_bytes()
            total_bytes += len(raw)
            eol = b"\r\n" if info["line_end"] == "CRLF" else b"\n"
            records = raw.split(eol)[:-1]
            assert len(records) == rows
            assert all(b"\r" not in r and b"\n" not in r for r in records)
            lengths.update("short" if len(r) < reclen else "long" if len(r) > reclen else "ok" for r in records)
        assert int(meta["Exact File Quantity (Rows)"].replace(",", "")) == info["records"]
        assert int(meta["Exact File Size in Bytes with 512 Blocksize"].replace(",", "")) == total_bytes
        assert lengths["short"] == info["rejects"].get("short_record", 0)
        assert lengths["long"] == info["rejects"].get("long_record", 0)
    medpar = (tiny_sandbox / expected[year]["files"]["medpar_all_file"]["fts"]).read_text().splitlines()
    misaligned = expected[year]["files"]["medpar_all_file"]["fts_misaligned_lines"]
    sep = next(line for line in medpar if line.startswith("----"))
    type_col = sum(len(g) + 1 for g in sep.split(" ")[:3])
    pushed = [i + 1 for i, line in enumerate(medpar)
              if re.match(r"\d+ ", line) and line[type_col:type_col + 4] not in ("CHAR", "NUM ", "DATE")]
    assert pushed == misaligned and len(misaligned) == 26, "MEDPAR_YR_NUM and DGNS_VRSN_CD_1..25 push the type field"


def _fields(info, tiny_sandbox):
    meta, cols = parse_fts(tiny_sandbox / info["fts"])
    pos, out = 0, {}
    for c, w in zip(cols, widths(cols), strict=False):
        out[c["short"]] = (slice(pos, pos + w), c["type"])
        pos += w
    return out, pos


def _fwf_records(info, tiny_sandbox):
    fields, reclen = _fields(info, tiny_sandbox)
    for rel in info["data"]:
        for line in (tiny_sandbox / rel).read_bytes().splitlines():
            yield fields, reclen, line.decode("ascii")


def _valid_fwf(fields, reclen, line) -> bool:
    if len(line) != reclen:
        return False
    for s, typ in fields.values():
        v = line[s].strip()
        if typ == "NUM" and v and not re.fullmatch(r"-?\d+(\.\d+)?", v):
            return False
        if typ == "DATE" and v:
            from datetime import datetime

            try:
                datetime.strptime(v, "%Y%m%d")
            except ValueError:
                return False
    return True


def _check_counts(exp, summary_rows, stays):
    """summary_rows: (bene, state, age, raw tuple); stays: (bene, state, adm, dis, raw tuple)."""
    s = exp["summary"]
    assert len(summary_rows) == s["records"]
    raws = Counter(r[3] for r in summary_rows)
    assert sum(n - 1 for n in raws.values()) == s["duplicate_records"]
    assert sum(1 for r in summary_rows if r[1] == "99") == s["invalid_state_records"]
    assert sum(1 for r in summary_rows if r[2] == 999) == s["age_out_of_range"]
    assert len({r[0] for r in summary_rows}) == s["beneficiaries"]
    enrolled = {(r[0], r[1]) for r in summary_rows if r[1] != "99"}
    assert len(enrolled) == s["enrollments"]
    states = Counter(r[0] for r in {(r[0], r[1]) for r in summary_rows})
    assert sum(1 for n in states.values() if n > 1) == s["two_state_beneficiaries"]
    a = exp["admissions"]
    assert len(stays) == a["records"]
    reasons, seen = Counter(), set()
    for bene, state, adm, dis, _raw in stays:
        if not bene or not state or adm is None or dis is None:
            reasons["primary_key"] += 1
        elif (bene, state) not in enrolled:
            reasons["foreign_key"] += 1
        elif (bene, state, adm, dis) in seen:
            reasons["duplicate"] += 1
        else:
            seen.add((bene, state, adm, dis))
            reasons["valid"] += 1
    assert dict(reasons) == {k: a[k] for k in ("valid", "duplicate", "foreign_key", "primary_key") if a[k]}
    assert min(a["duplicate"], a["foreign_key"], a["primary_key"], s["duplicate_records"],
               s["invalid_state_records"], s["age_out_of_range"]) >= 1, "every kind of defect is planted"


@pytest.mark.parametrize("year", [2011, 2015])
def test_fwf_counts_recomputed(tiny_sandbox, expected, year):
    exp = expected[year]
    files = exp["files"]
    summary_kind = "mbsf_ab_summary" if year < 2015 else "mbsf_abcd_summary"
    zip_col = files[summary_kind]["uniform"]["zip"]
    rows, rejected = [], Counter()
    for fields, reclen, line in _fwf_records(files[summary_kind], tiny_sandbox):
        if not _valid_fwf(fields, reclen, line):
            rejected["bad"] += 1
            continue
        v = {name: line[s].strip() for name, (s, _) in fields.items()}
        assert int(v["RFRNC_YR"]) == year and len(v[zip_col]) == 9
        rows.append((v["BENE_ID"], v["STATE_CD"], int(v["AGE"]), line))
    assert rejected["bad"] == sum(files[summary_kind]["rejects"].values()) == 3
    stays, rejected = [], Counter()
    for fields, reclen, line in _fwf_records(files["medpar_all_file"], tiny_sandbox):
        if not _valid_fwf(fields, reclen, line):
            rejected["bad"] += 1
            continue
        v = {name: line[s].strip() for name, (s, _) in fields.items()}
        assert v["MEDPAR_YR_NUM"] == str(year)
        stays.append((v["BENE_ID"], v["STATE_CD"], v["ADMSNDT"] or None, v["DSCHRGDT"] or None, line))
    assert rejected["bad"] == sum(files["medpar_all_file"]["rejects"].values()) == 3
    _check_counts(exp, rows, stays)
    if year < 2015:  # mbsf_d: one record per beneficiary of the summary
        benes = {r[0] for r in rows}
        d_ids = [line[:15].strip() for _, _, line in _fwf_records(files["mbsf_d_cmpnts"], tiny_sandbox)]
        assert len(d_ids) == len(set(d_ids)) and set(d_ids) == benes


@pytest.mark.parametrize("year", [2005, 2010])
def test_sas_files_read_back_and_counts(tiny_sandbox, expected, year):
    exp = expected[year]
    den_rel = next(iter(exp["files"]["denominator"]["data"]))
    ip_rel = next(iter(exp["files"]["inpatient"]["data"]))
    den, den_meta = pyreadstat.read_sas7bdat(str(tiny_sandbox / den_rel))
    ip, _ = pyreadstat.read_sas7bdat(str(tiny_sandbox / ip_rel))
    assert len(den) == exp["files"]["denominator"]["records"] and len(ip) == exp["files"]["inpatient"]["records"]
    u_den, u_ip = exp["files"]["denominator"]["uniform"], exp["files"]["inpatient"]["uniform"]
    assert {v for v in u_den.values() if v} <= set(den.columns)
    assert {v for v in u_ip.values() if v} <= set(ip.columns)
    if year <= 2005:
        assert set(den["enrolyr"]) == {year % 100}, "2-digit years"
        assert den["bene_dob"].min() > 18_000_000, "numeric YYYYMMDD dates"
        assert "year" not in ip.columns and "admsndt" in ip.columns
        adm, dis = ip["admsndt"], ip["dschrgdt"]
    else:
        assert set(den["rfrnc_yr"]) == {year}
        assert den["bene_birth_dt"].max() < 20_000, "SAS day numbers since 1960-01-01"
        adm, dis = ip["medpar_admsn_dt"], ip["medpar_dschrg_dt"]
    assert den_meta.column_labels[0] and den_meta.file_label == f"Denominator {year}"
    bene, state = u_den["bene_id"], u_den["state"]
    age = den["age"].astype(int)
    rows = [(b, s, a, tuple(r)) for b, s, a, r in zip(den[bene], den[state], age,
                                                      den.astype(str).itertuples(index=False, name=None), strict=False)]
    stays = [(b, s, None if x != x else x, None if y != y else y, None)
             for b, s, x, y in zip(ip[u_ip["bene_id"]], ip[u_ip["state"]], adm, dis, strict=False)]
    _check_counts(exp, rows, stays)


def test_crosswalks_cover_the_data(tiny_sandbox, expected):
    cw = tiny_sandbox / "restricted" / "medicare_crosswalks"
    with (cw / "ssa_fips_state_county.csv").open() as f:
        ssa = {r["ssacounty"]: r["fipscounty"] for r in csv.DictReader(f)}
    with (cw / "zip_county.csv").open() as f:
        zips = Counter(r["zip"] for r in csv.DictReader(f))
    info = expected[2011]["files"]["mbsf_ab_summary"]
    for fields, reclen, line in _fwf_records(info, tiny_sandbox):
        if _valid_fwf(fields, reclen, line):
            state, county, zip9 = (line[fields[n][0]] for n in ("STATE_CD", "CNTY_CD", "BENE_ZIP"))
            if state != "99":
                assert state + county in ssa and zip9[:5] in zips
    assert sum(1 for n in zips.values() if n > 1) >= 1, "some ZIPs straddle counties"


def test_manifest_and_determinism(tiny_sandbox, tmp_path):
    manifest = json.loads((tiny_sandbox / "manifest.json").read_text())
    assert manifest["counts"]["medicare.years"] == [2005, 2010, 2011, 2015]
    assert manifest["defects"]["medicare.2011.adm_duplicate"]["count"] >= 1
    assert manifest["defects"]["medicare.2015.medpar_all_file.short_record"]["count"] == 1
    again = generate(tmp_path / "again", "tiny", seed=1, only=["medicare"])
    other = generate(tmp_path / "other", "tiny", seed=2, only=["medicare"])
    ours = {k: v["sha256"] for k, v in manifest["files"].items() if v["kind"].startswith("medicare")}
    assert ours and {k: again.files[k]["sha256"] for k in ours} == ours, "same seed, same bytes (SAS7BDAT too)"
    assert {k: other.files[k]["sha256"] for k in ours} != ours
