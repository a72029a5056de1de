"""The DocGraph Hop Teaming sandbox part: zip layout, CSV format, the clean-row invariants and every
planted defect recounted from the files themselves (not from the generator's bookkeeping)."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from include.sandbox import hop_teaming, nppes
from include.sandbox.core import HOP_DIR, RESTRICTED, Manifest, is_valid_npi, make_npi
from include.sandbox.generate import generate

HEADER = "from_npi,to_npi,patient_count,transaction_count,average_day_wait,std_day_wait"
CRUFT = "9999999999"
DEFECT_NAMES = {
    "cruft": "hop.cruft_npi_9999999999",
    "invalid": "hop.invalid_check_digit",
    "not_in_nppes": "hop.npi_not_in_nppes",
    "privacy": "hop.privacy_violation",
    "tx_below": "hop.transactions_below_patients",
    "duplicate": "hop.duplicate_edge",
    "self_loop": "hop.self_loop",
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """A tiny sandbox with NPPES (to join against) and Hop Teaming only."""
    out = tmp_path_factory.mktemp("hop_sandbox")
    generate(out, "tiny", seed=1, only=["nppes", "hop_teaming"])
    return out


@pytest.fixture(scope="module")
def manifest(sandbox) -> Manifest:
    return Manifest.read(sandbox)


def years(manifest: Manifest) -> list[int]:
    return list(manifest.scale["hop_years"])


def zip_path(root: Path, year: int) -> Path:
    return root / RESTRICTED / HOP_DIR / f"DocGraph_Hop_Teaming_{year}.zip"


def csv_member(zf: zipfile.ZipFile, year: int) -> str:
    """Found the way a loader should find it: by the `*Hop_Teaming_<year>*.csv` pattern, outside __MACOSX."""
    pattern = re.compile(rf"(^|/)[^/]*Hop_Teaming_{year}[^/]*\.csv$")
    matches = [n for n in zf.namelist() if pattern.search(n) and not n.startswith("__MACOSX/")]
    assert len(matches) == 1, zf.namelist()
    return matches[0]


def read_csv_bytes(root: Path, year: int) -> bytes:
    with zipfile.ZipFile(zip_path(root, year)) as zf:
        return zf.read(csv_member(zf, year))


def read_rows(root: Path, year: int) -> list[list[str]]:
    text = read_csv_bytes(root, year).decode("ascii")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert ",".join(rows[0]) == HEADER
    return rows[1:]


def nppes_npis(root: Path) -> tuple[set[str], set[str], set[str]]:
    """(NPIs in the monthly npidata file, of which deactivated, NPIs in any NPPES npidata file)."""
    monthly: set[str] = set()
    deactivated: set[str] = set()
    anywhere: set[str] = set()
    deactivation = nppes.COLUMN["NPI Deactivation Date"]
    for bundle in sorted((root / "site" / "nppes").glob("NPPES_Data_Dissemination_*.zip")):
        with zipfile.ZipFile(bundle) as zf:
            for name in zf.namelist():
                if not name.startswith("npidata_pfile_") or name.endswith("_fileheader.csv"):
                    continue
                rows = list(csv.reader(io.TextIOWrapper(zf.open(name), encoding="utf-8", newline="")))[1:]
                npis = {r[0] for r in rows}
                anywhere |= npis
                if "Weekly" not in bundle.name:
                    monthly |= npis
                    deactivated |= {r[0] for r in rows if r[deactivation]}
    assert monthly, "no monthly NPPES file generated"
    return monthly, deactivated, anywhere


def classify(rows: list[list[str]], in_nppes: set[str]) -> list[set[str]]:
    """The defects of each row, decided from the row (and earlier rows) alone."""
    seen: set[tuple[str, str]] = set()
    out = []
    for src, dst, patients, transactions, _avg, _std in rows:
        flags = set()
        pair = (src, dst)
        if CRUFT in pair:
            flags.add("cruft")
        if any(n != CRUFT and not is_valid_npi(n) for n in pair):
            flags.add("invalid")
        if any(is_valid_npi(n) and n not in in_nppes for n in pair):
            flags.add("not_in_nppes")
        if int(patients) < 11:
            flags.add("privacy")
        if int(transactions) < int(patients):
            flags.add("tx_below")
        if src == dst:
            flags.add("self_loop")
        if pair in seen:
            flags.add("duplicate")
        seen.add(pair)
        out.append(flags)
    return out


# ------------------------------------------------------------------------------------------------ layout


def test_zip_members_and_names(sandbox, manifest):
    suffixes = set()
    for year in years(manifest):
        path = zip_path(sandbox, year)
        assert path.is_file()
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            member = csv_member(zf, year)
            folder, csv_name = member.split("/")
            assert csv_name == f"DocGraph_Hop_Teaming_{year}.csv"
            assert folder.startswith(f"DocGraph_Hop_Teaming_{year}")
            suffixes.add(folder.removeprefix(f"DocGraph_Hop_Teaming_{year}"))
            assert f"{folder}/DocGraph Readme.pdf" in names
            assert zf.read(f"{folder}/DocGraph Readme.pdf").startswith(b"%PDF-1.4")
            clutter = f"__MACOSX/{folder}/._{csv_name}"
            assert clutter in names
            assert zf.read(clutter)[:4] == b"\x00\x05\x16\x07"  # AppleDouble magic
            assert zf.getinfo(member).compress_type == zipfile.ZIP_DEFLATED
            assert zf.testzip() is None
            for info in zf.infolist():
                pure = PurePosixPath(info.filename)
                assert "\\" not in info.filename and not pure.is_absolute() and ".." not in pure.parts
                assert not pure.parts[0].endswith(":")
    assert "" in suffixes and len(suffixes) > 1, suffixes  # the folder name varies by year


def test_download_code_accepts_the_zips(sandbox, manifest, tmp_path):
    from include.download import archives, sources

    for year in years(manifest):
        archives.check_zip(zip_path(sandbox, year))
        copied = sources.copy_local_hop_teaming(sandbox / RESTRICTED / HOP_DIR, tmp_path, year)
        assert copied.name == f"DocGraph_Hop_Teaming_{year}.zip"
        assert copied.read_bytes() == zip_path(sandbox, year).read_bytes()


def test_header_exact_and_lf_line_endings(sandbox, manifest):
    for year in years(manifest):
        data = read_csv_bytes(sandbox, year)
        assert data.startswith(HEADER.encode() + b"\n")
        assert b"\r" not in data and data.endswith(b"\n") and not data.endswith(b"\n\n")
        assert b'"' not in data


def test_row_counts_match_manifest(sandbox, manifest):
    for year in years(manifest):
        rows = read_rows(sandbox, year)
        assert len(rows) == manifest.counts[f"hop.{year}.rows"] == manifest.scale["hop_edges"]
        entry = manifest.files[f"{RESTRICTED}/{HOP_DIR}/DocGraph_Hop_Teaming_{year}.zip"]
        assert entry["kind"] == "hop_teaming" and entry["year"] == year and entry["rows"] == len(rows)
        assert all(len(r) == 6 for r in rows)


# ------------------------------------------------------------------------------------------------ content


def test_clean_rows_satisfy_the_invariants_and_join_to_nppes(sandbox, manifest):
    monthly, deactivated, anywhere = nppes_npis(sandbox)
    for year in years(manifest):
        rows = read_rows(sandbox, year)
        flags = classify(rows, anywhere)
        clean = [row for row, f in zip(rows, flags, strict=True) if not f]
        assert len(clean) == manifest.counts[f"hop.{year}.clean_rows"]
        for src, dst, patients, transactions, avg, std in clean:
            assert re.fullmatch(r"[12]\d{9}", src) and re.fullmatch(r"[12]\d{9}", dst)
            assert src in monthly and dst in monthly
            assert src not in deactivated and dst not in deactivated
            assert src != dst
            assert int(patients) >= 11
            assert int(transactions) >= int(patients)
            assert re.fullmatch(r"\d+\.\d+", avg) and re.fullmatch(r"\d+\.\d+", std)
            assert float(avg) >= 0 and float(std) >= 0
        pairs = {(r[0], r[1]) for r in clean}
        assert len(pairs) == len(clean)
        reciprocal = sum((dst, src) in pairs for src, dst in pairs)
        mirrored = manifest.counts[f"hop.{year}.mirrored_rows"]
        assert mirrored > 0 and reciprocal >= mirrored, "A->B and B->A should both appear"


def test_planted_defects_recounted_from_the_files(sandbox, manifest):
    _monthly, _deactivated, anywhere = nppes_npis(sandbox)
    totals = dict.fromkeys(DEFECT_NAMES, 0)
    for year in years(manifest):
        flags = classify(read_rows(sandbox, year), anywhere)
        assert all(len(f) <= 1 for f in flags), "a planted row carries more than one defect"
        for short in DEFECT_NAMES:
            found = sum(short in f for f in flags)
            assert found == manifest.counts[f"hop.{year}.defect.{short}"], (year, short)
            assert found >= 1, (year, short)
            totals[short] += found
        assert manifest.counts[f"hop.{year}.clean_rows"] == sum(not f for f in flags)
    for short, name in DEFECT_NAMES.items():
        assert manifest.defects[name]["count"] == totals[short], name
        assert manifest.defects[name]["description"]
        assert manifest.defects[name]["examples"]


def test_not_in_nppes_npis_are_unknown_to_the_api(sandbox, manifest):
    from include.sandbox import providers

    _monthly, _deactivated, anywhere = nppes_npis(sandbox)
    scale = manifest.scale
    for year in years(manifest):
        for row in read_rows(sandbox, year):
            for npi in row[:2]:
                if is_valid_npi(npi) and npi not in anywhere:
                    assert providers.api_provider(1, npi, scale["spending_npis"], scale["nppes_rows"]) is None


def test_cruft_list_is_every_npi_a_cleaner_must_drop(sandbox, manifest):
    listed = (sandbox / RESTRICTED / HOP_DIR / "expected" / "hop_cruft_npis.txt").read_text()
    assert listed.endswith("\n")
    lines = listed.splitlines()
    assert lines == sorted(lines) and len(lines) == len(set(lines))
    found = {npi for year in years(manifest) for row in read_rows(sandbox, year) for npi in row[:2]
             if not is_valid_npi(npi)}
    assert set(lines) == found
    assert CRUFT in found and len(found) > 1


def test_deterministic_per_seed(tmp_path):
    def digests(out: Path, seed: int) -> dict[str, str]:
        manifest = generate(out, "tiny", seed=seed, only=["hop_teaming"])
        files = {k: v["sha256"] for k, v in manifest.files.items()}
        for rel, sha in files.items():
            assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == sha
        return files

    first, again, other = digests(tmp_path / "a", 1), digests(tmp_path / "b", 1), digests(tmp_path / "c", 2)
    assert first == again
    zips = [k for k in first if k.endswith(".zip")]
    assert zips and all(first[k] != other[k] for k in zips)


def test_hop_teaming_part_is_registered():
    from include.sandbox.generate import PARTS

    assert PARTS["hop_teaming"] == "include.sandbox.hop_teaming"


# ------------------------------------------------------------------------------------------------ helpers


def test_vectorised_npis_match_make_npi():
    indexes = np.arange(0, 5_000_000, 4_999, dtype=np.int64)
    assert [str(n) for n in hop_teaming.npis_of(indexes)] == [make_npi(int(i)) for i in indexes]


def test_format_rows_matches_python_formatting():
    g = np.random.default_rng(7)
    n = 5_000
    src = g.integers(1_000_000_000, 3_000_000_000, n)
    dst = g.integers(1_000_000_000, 3_000_000_000, n)
    patients = np.concatenate([np.arange(0, 200), g.integers(0, 10**10, n - 200)])
    transactions = np.concatenate([np.array([0, 9, 10, 99_999, 100_000, 100_001]), g.integers(0, 10**7, n - 6)])
    avg, std = g.integers(0, 10_000, n), g.integers(0, 100_000, n)
    got = hop_teaming.format_rows(src, dst, patients, transactions, avg, std).decode()
    expected = "".join(
        f"{a},{b},{p},{t},{w // 10}.{w % 10},{s // 100}.{s % 100:02d}\n"
        for a, b, p, t, w, s in zip(src.tolist(), dst.tolist(), patients.tolist(), transactions.tolist(),
                                    avg.tolist(), std.tolist(), strict=True)
    )
    assert got == expected


def test_too_many_edges_for_the_pool_is_an_error(tmp_path):
    from include.sandbox.core import SCALES

    scale = SCALES["tiny"].with_overrides({"hop_edges": "1000000", "hop_years": "2021"})
    with pytest.raises(ValueError, match="too many"):
        generate(tmp_path, scale, only=["hop_teaming"])
