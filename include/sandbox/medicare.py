"""ResDAC Medicare files for the sandbox: a beneficiary population followed over the years, written as

- 2011+ (`medicare_fwf_years`): `restricted/medicare/<YYYY>/` with fixed-width `.dat` files, each beside
  its File Transfer Summary `.fts`: `mbsf_ab_summary` + `mbsf_d_cmpnts` up to 2014,
  `mbsf_abcd_summary` from 2015, and `medpar_all_file` (split into `_001.dat`… parts in some years);
  CRLF line ends in some years; FTS variants (record length key, thousands separators, terminators, a
  short name that overflows its field);
- 1999-2010 (`medicare_sas_years`): `restricted/medicare/<YYYY>/denominator/*.sas7bdat` and
  `.../inpatient/*.sas7bdat`, written by a real SAS7BDAT writer (see sasfile.py), column names, year
  digits and date forms differing by era;
- `restricted/medicare_crosswalks/`: SSA→FIPS county and ZIP→county crosswalks consistent with the data;
- `expected/medicare_<YYYY>.json`: what a correct ingestion and processing must find, exactly.

Planted defects (each counted exactly in the expected file and the manifest):
- enrollment: exact duplicate summary records, an invalid state code (`99`), ages out of range (999),
  beneficiaries in two states in one year (movers), dob/sex typos in one year (beneficiary discrepancies);
- admissions: exact duplicates (→ DUPLICATE), stays of beneficiaries not enrolled that year or in another
  state (→ FOREIGN KEY), stays without an admission date (→ PRIMARY KEY);
- fixed-width only, at the byte level: a short record, a long record, a non-numeric value in a NUM
  column, an impossible date in a DATE column. These are extra records (ghost beneficiaries), so the
  valid counts do not depend on how an ingester treats them.

Everything streams: the population is regenerated chunk by chunk from its own random streams for
each year, records go straight to the file writers; memory stays flat at any size.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from include.medicare.geography import us_states
from include.sandbox.core import RESTRICTED, rng
from include.sandbox.medicare_layouts import (
    AMOUNTS,
    UNIFORM,
    FwfField,
    mbsf_ab_layout,
    mbsf_abcd_layout,
    mbsf_d_layout,
    medpar_layout,
    sas_denominator_columns,
    sas_era,
    sas_inpatient_columns,
)
from include.sandbox.sasfile import DtaWriter, dta_to_sas7bdat

MEDICARE_DIR = "medicare"
CROSSWALK_DIR = "medicare_crosswalks"
CHUNK = 20_000
POPULATION_FACTOR = 2.5  # ~40% of the population is enrolled in any one year
SAS_EPOCH = date(1960, 1, 1)

# Defect rates (a fraction of the eligible records; counts are exact in the expected file)
RATE = {
    "enrl_duplicate": 0.002, "enrl_invalid_state": 0.002, "enrl_age_out_of_range": 0.001,
    "adm_duplicate": 0.01, "adm_dangling": 0.005, "adm_state_mismatch": 0.003, "adm_missing_date": 0.003,
    "mover": 0.05, "mover_two_states": 0.3, "typo": 0.02,
}
ADMISSIONS_PER_YEAR = ((0, 0.80), (1, 0.13), (2, 0.05), (3, 0.02))
ICD9 = ("4280", "486", "5849", "0389", "41071", "4019", "25000", "2724", "42731", "496", "5990", "78650")
ICD10 = ("I509", "J189", "N179", "A419", "I214", "I10", "E119", "E785", "I4891", "J449", "N390", "R079")
STATE_WEIGHTS = {"05": 12, "10": 7, "33": 6, "45": 8, "39": 4, "36": 4, "14": 4, "23": 3}

REQUEST = {"res": "res000050354", "req": "req005900"}


# ------------------------------------------------------------------------------------------ geography

@dataclass(frozen=True)
class County:
    ssa2: str
    ssa3: str
    fips2: str
    fips3: str
    zips: tuple[str, ...]


def geography(seed: int) -> dict[str, list[County]]:
    """Counties per SSA state, with ZIP codes unique to each county (a few shared with a neighbour
    county in the crosswalk, so ZIP→county is inexact there, as in HUD's crosswalk)."""
    r = rng(seed, "medicare", "geography")
    used: set[str] = set()
    out: dict[str, list[County]] = {}
    for st in us_states():
        counties = []
        for k in range(1, 3 + int(st.ssa2) % 5 + 1):
            zips = []
            while len(zips) < 4:
                z = f"{r.randint(1000, 99950):05d}"
                if z not in used:
                    used.add(z)
                    zips.append(z)
            counties.append(County(st.ssa2, f"{k * 10:03d}", st.fips2, f"{2 * k - 1:03d}", tuple(zips)))
        out[st.ssa2] = counties
    return out


def write_crosswalks(ctx, geo: dict[str, list[County]]) -> None:
    states = {s.ssa2: s for s in us_states()}
    ssa = ctx.path(RESTRICTED, CROSSWALK_DIR, "ssa_fips_state_county.csv")
    zips = ctx.path(RESTRICTED, CROSSWALK_DIR, "zip_county.csv")
    shared = 0
    with ssa.open("w", encoding="utf-8", newline="") as fs, zips.open("w", encoding="utf-8", newline="") as fz:
        fs.write("county,state,ssacounty,fipscounty,ssastate,fipsstate\n")
        fz.write("zip,county,res_ratio\n")
        for ssa2, counties in geo.items():
            for i, c in enumerate(counties):
                fs.write(f"COUNTY {c.ssa3},{states[ssa2].state_id},{c.ssa2}{c.ssa3},{c.fips2}{c.fips3},{c.ssa2},{c.fips2}\n")
                for j, z in enumerate(c.zips):
                    if j == 3 and i + 1 < len(counties):  # the last ZIP straddles the next county
                        nxt = counties[i + 1]
                        fz.write(f"{z},{c.fips2}{c.fips3},0.7\n{z},{nxt.fips2}{nxt.fips3},0.3\n")
                        shared += 1
                    else:
                        fz.write(f"{z},{c.fips2}{c.fips3},1.0\n")
    for p in (ssa, zips):
        ctx.manifest.add_file(ctx.root, p, "medicare_crosswalk")
    ctx.manifest.count("medicare.crosswalk.inexact_zips", shared)


# ----------------------------------------------------------------------------------------- population

def bene_id(seed: int, index: int) -> str:
    """A 15-character encrypted-looking beneficiary id, unique per index."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=10).digest()
    return base64.b32encode(digest).decode()[:15].lower()


@dataclass
class Bene:
    index: int
    bene_id: str
    dob: date
    sex: str
    race: str
    rti_race: str
    disabled: bool
    entry: int  # first year of entitlement
    death: date | None
    homes: list[tuple[int, County, str]]  # (from year, county, zip9), sorted
    two_states_year: int | None  # the move year in which both states report the beneficiary
    typo: tuple[int, str] | None  # (year, "dob" | "sex")

    def enrolled(self, year: int) -> bool:
        return self.entry <= year and (self.death is None or self.death.year >= year)

    def residences(self, year: int) -> list[tuple[County, str]]:
        current = [h for h in self.homes if h[0] <= year]
        if not current:
            return []
        now = current[-1]
        if self.two_states_year == year and len(current) > 1:
            return [(current[-2][1], current[-2][2]), (now[1], now[2])]
        return [(now[1], now[2])]


def _weighted_state(r: random.Random, states: list[str], weights: list[int]) -> str:
    return r.choices(states, weights)[0]


def population(seed: int, size: int, years: tuple[int, ...], geo: dict[str, list[County]]) -> Iterator[list[Bene]]:
    """The beneficiaries in chunks; chunk k is drawn from its own stream, so any chunk regenerates alone."""
    states = list(geo)
    weights = [STATE_WEIGHTS.get(s, 1) for s in states]
    for start in range(0, size, CHUNK):
        r = rng(seed, "medicare", "population", start // CHUNK)
        chunk = []
        for index in range(start, min(size, start + CHUNK)):
            disabled = r.random() < 0.1
            entry = r.randint(1980, 2018)
            born = entry - (r.randint(25, 60) if disabled else 65)
            dob = date(born, r.randint(1, 12), r.randint(1, 28))
            death_year = entry + r.randint(0, 40)
            death = date(death_year, r.randint(1, 12), r.randint(1, 28)) if death_year <= 2025 else None
            county = r.choice(geo[_weighted_state(r, states, weights)])
            homes = [(0, county, r.choice(county.zips) + f"{r.randint(0, 9999):04d}")]
            two_states_year = None
            if r.random() < RATE["mover"]:
                move = entry + r.randint(1, 15)
                other = geo[r.choice([s for s in states if s != county.ssa2])]
                new = r.choice(other)
                homes.append((move, new, r.choice(new.zips) + f"{r.randint(0, 9999):04d}"))
                if r.random() < RATE["mover_two_states"]:
                    two_states_year = move
            typo = None
            if r.random() < RATE["typo"]:  # in a year the beneficiary is enrolled, so it shows
                kind = r.choice(("dob", "sex"))
                enrolled = [y for y in years if entry <= y and (death is None or death.year >= y)]
                if enrolled:
                    typo = (r.choice(enrolled), kind)
            race = r.choices("1234560", (78, 10, 3, 3, 4, 1, 1))[0]
            chunk.append(Bene(index, bene_id(seed, index), dob, r.choice("12"), race,
                              race if r.random() < 0.9 else r.choice("12345"), disabled, entry, death, homes,
                              two_states_year, typo))
        yield chunk


# ----------------------------------------------------------------------------------- yearly records

def _months(r: random.Random, kind: str) -> list[bool]:
    if kind == "none":
        return [False] * 12
    if kind == "all":
        return [True] * 12
    start = r.randint(0, 10)
    return [start <= m for m in range(12)]


@dataclass
class YearStats:
    summary_records: int = 0
    benes: int = 0  # counted per beneficiary as it is written (a beneficiary lives in one chunk): no sets,
    enrollments: int = 0  # so memory stays flat at any population size
    defects: dict[str, int] = field(default_factory=dict)
    typos: dict[str, list[str]] = field(default_factory=lambda: {"dob": [], "sex": []})
    admissions_records: int = 0
    admissions_valid: int = 0
    deaths: int = 0
    ids: dict[str, list[str]] = field(default_factory=dict)  # examples per defect
    eligible: dict[str, int] = field(default_factory=dict)
    records_with_state_99: int = 0  # planted records and their duplicates
    records_with_age_999: int = 0

    def plant(self, name: str, r: random.Random) -> bool:
        """Plant defect `name` at its rate; the 5th eligible record of a year gets it anyway when none
        has yet, so even the tiny sandbox holds every kind."""
        seen = self.eligible[name] = self.eligible.get(name, 0) + 1
        return r.random() < RATE[name] or (seen == 5 and not self.defects.get(name))

    def hit(self, name: str, example: str | None = None) -> None:
        self.defects[name] = self.defects.get(name, 0) + 1
        if example is not None and len(self.ids.setdefault(name, [])) < 10:
            self.ids[name].append(example)


def summary_record(b: Bene, year: int, county: County, zip9: str, r: random.Random) -> dict[str, Any]:
    dob, sex = b.dob, b.sex
    if b.typo and b.typo[0] == year:
        if b.typo[1] == "dob":
            dob = dob + timedelta(days=1)
        else:
            sex = "2" if sex == "1" else "1"
    hmo = _months(r, r.choices(("none", "all", "part"), (65, 25, 10))[0])
    dual_kind = r.choices(("none", "all", "part"), (82, 12, 6))[0]
    dual = _months(r, dual_kind)
    died = b.death is not None and b.death.year == year
    return {
        "bene_id": b.bene_id, "year": year, "state": county.ssa2, "county": county.ssa3, "zip9": zip9,
        "dob": dob, "dod": b.death if died else None, "ndi_dod": b.death if died and r.random() < 0.5 else None,
        "sex": sex, "race": b.race, "rti_race": b.rti_race, "age": year - dob.year,
        "orec": "1" if b.disabled else "0", "crec": "1" if b.disabled else "0", "esrd": "Y" if r.random() < 0.01 else "0",
        "ms_cd": "20" if b.disabled else "10", "covstart": date(max(b.entry, 1966), 1, 1),
        "bic": "A " if not b.disabled else "D ", "fivepct": "Y" if r.random() < 0.05 else " ",
        "hmo": ["C" if x else "0" for x in hmo], "hmo_mo": sum(hmo),
        "buyin": ["C" if d else "3" for d in dual], "buyin_mo": sum(dual),
        "dual": ["02" if d else "00" for d in dual], "dual_mo": sum(dual),
        "a_mo": 12, "b_mo": 12 if r.random() < 0.92 else 0,
        "cntrct": [("H1234" if h else "S5678") for h in hmo], "pbp": ["001"] * 12, "sgmt": ["000"] * 12,
        "rds": ["N"] * 12, "cstshr": [("04" if d else "09") for d in dual], "plncov_mo": 12, "rds_mo": 0,
    }


def admission_records(b: Bene, year: int, county: County, zip9: str, n: int, r: random.Random,
                      counter: list[int], seed: int) -> list[dict[str, Any]]:
    out = []
    seg = 365 // max(n, 1)
    for j in range(n):
        adm = date(year, 1, 1) + timedelta(days=j * seg + r.randint(0, seg // 2))
        los = r.randint(1, max(1, min(30, seg // 2 - 1)))
        dis = min(adm + timedelta(days=los), date(year, 12, 31))
        counter[0] += 1
        icd = ICD10 if (year, adm.month) >= (2015, 10) else ICD9
        ndiag = r.randint(1, 12)
        amounts = {short: round(r.uniform(0, 20000), 2) if short in ("DRGPRICE", "PMT_AMT", "TOTCHRG")
                   else (round(r.uniform(0, 1500), 2) if r.random() < 0.3 else 0.0) for short, _, _ in AMOUNTS}
        out.append({
            "bene_id": b.bene_id, "medparid": hashlib.blake2b(f"{seed}:{year}:{counter[0]}".encode(), digest_size=8)
            .hexdigest()[:15].upper(), "year": year, "state": county.ssa2, "county": county.ssa3, "zip5": zip9[:5],
            "zip9": zip9, "age": year - b.dob.year, "sex": b.sex, "race": b.race, "ms_cd": "20" if b.disabled else "10",
            "adm": adm, "dis": dis, "los": (dis - adm).days,
            "day": str((adm.isoweekday() % 7) + 1), "type": r.choice("1123"), "src": r.choice("1127"),
            "dstntn": r.choice(("01", "01", "06", "03", "62")), "dschrg": "B" if b.death == dis else "A",
            "prvdr": f"{int(county.ssa2):02d}{r.randint(1, 9999):04d}", "drg": f"{r.randint(1, 999):03d}",
            "diags": [r.choice(icd) for _ in range(ndiag)], "vrsn": "0" if icd is ICD10 else "9",
            "procs": [(f"{r.randint(0, 99):02d}{r.randint(0, 99):02d}", adm + timedelta(days=1))
                      for _ in range(r.randint(0, 3))],
            "amounts": amounts,
        })
    return out


# ------------------------------------------------------------------------------------- fixed width

def _fmt(f: FwfField, value: Any) -> str:
    if value is None or value == "":
        return " " * f.width
    if f.type == "DATE":
        text = value.strftime("%Y%m%d") if isinstance(value, date) else str(value)
    elif f.type == "NUM":
        text = (f"{value:.{f.scale}f}" if f.scale else str(int(value))).rjust(f.width)
    else:
        text = str(value).ljust(f.width)
    if len(text) != f.width:
        raise ValueError(f"sandbox bug: {value!r} does not fit {f.short} ({f.width_text})")
    return text


def summary_values(rec: dict[str, Any]) -> dict[str, Any]:
    v = {
        "BENE_ID": rec["bene_id"], "RFRNC_YR": rec["year"], "FIVEPCT": rec["fivepct"].strip(), "EFIVEPCT": "",
        "COVSTART": rec["covstart"], "CRNT_BIC": rec["bic"], "STATE_CD": rec["state"], "CNTY_CD": rec["county"],
        "BENE_ZIP": rec["zip9"], "ZIP_CD": rec["zip9"], "AGE": rec["age"], "BENE_DOB": rec["dob"],
        "V_DOD_SW": "V" if rec["dod"] else "", "DEATH_DT": rec["dod"], "NDI_DEATH_DT": rec["ndi_dod"],
        "SEX": rec["sex"], "RACE": rec["race"], "RTI_RACE_CD": rec["rti_race"], "OREC": rec["orec"],
        "CREC": rec["crec"], "ESRD_IND": rec["esrd"], "MS_CD": rec["ms_cd"], "A_TRM_CD": "0", "B_TRM_CD": "0",
        "A_MO_CNT": rec["a_mo"], "B_MO_CNT": rec["b_mo"], "BUYIN_MO": rec["buyin_mo"], "HMO_MO": rec["hmo_mo"],
        "PLNCOVMO": rec["plncov_mo"], "RDSMO": rec["rds_mo"], "DUAL_MO": rec["dual_mo"],
    }
    for i in range(12):
        m = f"{i + 1:02d}"
        v[f"BUYIN{m}"], v[f"HMOIND{m}"], v[f"DUAL_{m}"] = rec["buyin"][i], rec["hmo"][i], rec["dual"][i]
        v[f"CNTRCT{m}"], v[f"PBPID{m}"], v[f"SGMTID{m}"] = rec["cntrct"][i], rec["pbp"][i], rec["sgmt"][i]
        v[f"RDSIND{m}"], v[f"CSTSHR{m}"] = rec["rds"][i], rec["cstshr"][i]
    return v


def medpar_values(a: dict[str, Any]) -> dict[str, Any]:
    v = {
        "BENE_ID": a["bene_id"], "MEDPARID": a["medparid"], "MEDPAR_YR_NUM": str(a["year"]), "CLM_TYPE": "60",
        "BIC": "A", "EQ_BIC": "A", "AGE_CNT": a["age"], "SEX": a["sex"], "RACE": a["race"], "MS_CD": a["ms_cd"],
        "STATE_CD": a["state"], "CNTY_CD": a["county"], "BENE_ZIP": a["zip5"], "DSCHRGCD": a["dschrg"],
        "PRVDR_NUM": a["prvdr"], "ADMSNDT": a["adm"], "ADMSNDAY": a["day"] if a["adm"] else "", "DSCHRGDT": a["dis"],
        "DSTNTNCD": a["dstntn"], "TYPE_ADM": a["type"], "SRC_ADMS": a["src"], "LOSCNT": a["los"], "DRG_CD": a["drg"],
        "AD_DGNS": a["diags"][0], "BNDLD_MODEL_DSCNT_PCT": 0.0,
    }
    for ix, code in enumerate(a["diags"], 1):
        v[f"DGNSCD{ix}"], v[f"DGNS_VRSN_CD_{ix}"], v[f"POA_DGNS{ix}"] = code, a["vrsn"], "Y"
    for ix, (code, when) in enumerate(a["procs"], 1):
        v[f"PRCDRCD{ix}"], v[f"PRCDRDT{ix}"] = code, when
    v.update(a["amounts"])
    return v


class FwfWriter:
    """Writes records of one layout into `<base>.dat` or `<base>_NNN.dat` parts, then the FTS."""

    def __init__(self, folder: Path, base: str, layout: list[FwfField], *, eol: str, parts: int = 1) -> None:
        self.folder, self.base, self.layout, self.eol, self.parts = folder, base, layout, eol.encode(), parts
        self.record_length = sum(f.width for f in layout)
        self.buffer: list[bytes] = []
        self.records = 0
        self.rejects: dict[str, int] = {}

    def add(self, values: dict[str, Any]) -> None:
        line = "".join(_fmt(f, values.get(f.short)) for f in self.layout).encode("ascii")
        self.buffer.append(line)
        self.records += 1

    def add_raw(self, line: bytes, reason: str) -> None:
        self.buffer.append(line)
        self.records += 1
        self.rejects[reason] = self.rejects.get(reason, 0) + 1

    def field_slice(self, short: str) -> slice:
        pos = 0
        for f in self.layout:
            if f.short == short:
                return slice(pos, pos + f.width)
            pos += f.width
        raise KeyError(short)

    def data_names(self) -> list[str]:
        return [f"{self.base}.dat"] if self.parts == 1 else [f"{self.base}_{i:03d}.dat" for i in range(1, self.parts + 1)]


def write_fts(path: Path, writer: FwfWriter, *, year: int, description: str, data_bytes: int,
              length_key: str, terminator: str) -> list[int]:
    """The File Transfer Summary; returns the line numbers of the misaligned column rows: as in real
    files, a short name longer than its 12-character field (MEDPAR_YR_NUM, DGNS_VRSN_CD_nn) runs into
    the type field instead of being cut."""
    widths = (4, 30, 12, 4, 5, 6, 44)
    header = ["File Transfer Summary", "",
              f"{'Researcher:':<53}JANE Q RESEARCHER",
              f"{'Request #:':<53}{REQUEST['req'].upper()}",
              f"{'File Description:':<53}{description}",
              f"{'Actual File Name:':<53}{writer.base}.dat",
              f"{'Date Extracted:':<53}03/15/{year + 2}",
              f"{'Format:':<53}Fixed Width",
              f"{'Columns in File:':<53}{len(writer.layout)}",
              f"{'Exact File Quantity (Rows):':<53}{writer.records:,}",
              f"{length_key + ':':<53}{writer.record_length:,}",
              f"{'Exact File Size in Bytes with 512 Blocksize:':<53}{data_bytes:,}",
              f"{'SAS v8.x or Greater Compatible Read-In Program:':<53}{writer.base}.sas",
              ""]
    titles = ("Col", "Long Name", "Short Name", "Type", "Start", "Length", "Description")
    lines = [*header, " ".join(t.ljust(w) for t, w in zip(titles, widths, strict=False)).rstrip(), " ".join("-" * w for w in widths)]
    misaligned = []
    start = 1
    for i, f in enumerate(writer.layout, 1):
        cells = [str(i), f.long, f.short, f.type, str(start), f.width_text, f.desc]
        if len(f.short) > widths[2]:  # a real-world overflow: the short name runs into the type field
            row = f"{cells[0]:<4} {cells[1]:<30} {cells[2]} {cells[3]:<4} {cells[4]:<5} {cells[5]:<6} {cells[6]}"
            misaligned.append(len(lines) + 1)
        else:
            row = " ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()
        lines.append(row)
        start += f.width
    lines += ["", terminator] if terminator else [""]
    path.write_text("\n".join(lines) + "\n", encoding="ascii", newline="\r\n" if year % 2 else "\n")
    return misaligned


# -------------------------------------------------------------------------------------------- the part

def _ghost(seed: int, size: int, n: int) -> Bene:
    """A beneficiary outside the population (never enrolled)."""
    b = Bene(size + 1_000_000 + n, bene_id(seed, size + 1_000_000 + n), date(1940, 1, 1), "1", "1", "1", False,
             2100, None, [], None, None)
    return b


def _draw_admissions(r: random.Random) -> int:
    x = r.random()
    for n, p in ADMISSIONS_PER_YEAR:
        if x < p:
            return n
        x -= p
    return 0


def generate_year(ctx, year: int, geo: dict[str, list[County]], size: int, years: tuple[int, ...]) -> dict[str, Any]:
    seed, fwf = ctx.seed, year >= 2011
    folder = ctx.path(RESTRICTED, MEDICARE_DIR, str(year), "x").parent
    stats = YearStats()
    admissions: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    other_states = list(geo)
    counter = [0]
    ghosts = 0
    r_def = rng(seed, "medicare", year, "defects")

    sinks = _Sinks(ctx, folder, year, fwf)
    for chunk in population(seed, size, years, geo):
        r = rng(seed, "medicare", year, "records", chunk[0].index // CHUNK)
        for b in chunk:
            if not b.enrolled(year):
                continue
            places = b.residences(year)
            if len(places) > 1:
                stats.hit("enrl_two_states", b.bene_id)
            if b.typo and b.typo[0] == year:
                stats.typos[b.typo[1]].append(b.bene_id)
            n_adm = _draw_admissions(r)
            valid_states: set[str] = set()
            for k, (county, zip9) in enumerate(places):
                rec = summary_record(b, year, county, zip9, r)
                valid_state = True
                if stats.plant("enrl_invalid_state", r_def):
                    rec["state"], valid_state = "99", False
                    stats.hit("enrl_invalid_state", b.bene_id)
                if stats.plant("enrl_age_out_of_range", r_def):
                    rec["age"] = 999
                    stats.hit("enrl_age_out_of_range", b.bene_id)
                summary.append(rec)
                if valid_state:
                    valid_states.add(county.ssa2)
                if rec["dod"]:
                    stats.deaths += 1
                if stats.plant("enrl_duplicate", r_def):
                    summary.append(dict(rec))
                    stats.hit("enrl_duplicate", b.bene_id)
                copies = 2 if summary[-1] is not rec else 1
                stats.records_with_state_99 += copies * (rec["state"] == "99")
                stats.records_with_age_999 += copies * (rec["age"] == 999)
                if k == 0 and valid_state:
                    for a in admission_records(b, year, county, zip9, n_adm, r, counter, seed):
                        admissions.append(a)
                        stats.admissions_valid += 1
                        if stats.plant("adm_duplicate", r_def):
                            admissions.append(dict(a))
                            stats.hit("adm_duplicate", b.bene_id)
                        if stats.plant("adm_state_mismatch", r_def):
                            mine = {c.ssa2 for c, _ in places}
                            wrong = geo[r_def.choice([s for s in other_states if s not in mine])][0]
                            moved = admission_records(b, year, wrong, wrong.zips[0] + "0000", 1, r_def, counter, seed)[0]
                            admissions.append(moved)
                            stats.hit("adm_state_mismatch", b.bene_id)
                        if stats.plant("adm_missing_date", r_def):
                            broken = admission_records(b, year, county, zip9, 1, r_def, counter, seed)[0]
                            broken["adm"], broken["los"] = None, None
                            admissions.append(broken)
                            stats.hit("adm_missing_date", b.bene_id)
            stats.benes += 1
            stats.enrollments += len(valid_states)
            if stats.plant("adm_dangling", r_def):
                ghost = _ghost(seed, size, ghosts)
                ghosts += 1
                county, zip9 = places[0]
                admissions += admission_records(ghost, year, county, zip9, 1, r_def, counter, seed)
                stats.hit("adm_dangling", ghost.bene_id)
        sinks.write(summary, admissions)
        stats.summary_records += len(summary)
        stats.admissions_records += len(admissions)
        summary, admissions = [], []
    return sinks.close(stats, geo, size, seed, r_def)


class _Sinks:
    """The files of one year: FWF writers (buffered per chunk) or streaming DTA → SAS7BDAT writers."""

    def __init__(self, ctx, folder: Path, year: int, fwf: bool) -> None:
        self.ctx, self.folder, self.year, self.fwf = ctx, folder, year, fwf
        self.files: dict[str, dict[str, Any]] = {}
        if fwf:
            eol = "\r\n" if year in (2011, 2014, 2017) else "\n"
            tag = f"{REQUEST['res']}_{REQUEST['req']}_{year}"
            if year <= 2014:
                self.summary = [FwfWriter(folder, f"mbsf_ab_summary_{tag}", mbsf_ab_layout(), eol=eol),
                                FwfWriter(folder, f"mbsf_d_cmpnts_{tag}", mbsf_d_layout(), eol=eol)]
            else:
                self.summary = [FwfWriter(folder, f"mbsf_abcd_summary_{tag}", mbsf_abcd_layout(), eol=eol)]
            parts = 3 if year in (2012, 2015, 2018) else 1
            self.medpar = FwfWriter(folder, f"medpar_all_file_{tag}", medpar_layout(year), eol=eol, parts=parts)
            self._streams: dict[str, Any] = {}
        else:
            self.era = sas_era(year)
            self.den_cols = sas_denominator_columns(year)
            self.ip_cols = sas_inpatient_columns(year)
            (folder / "denominator").mkdir(parents=True, exist_ok=True)
            (folder / "inpatient").mkdir(parents=True, exist_ok=True)
            self.den_path = folder / "denominator" / f"denom_{year}.sas7bdat"
            self.ip_path = folder / "inpatient" / f"medpar_{year}.sas7bdat"
            self.den = DtaWriter(folder / f".denom_{year}.dta", self.den_cols, f"Denominator {year}")
            self.ip = DtaWriter(folder / f".medpar_{year}.dta", self.ip_cols, f"Inpatient {year}")

    # FWF: records are written part file by part file as they come (each part gets an equal share of
    # each chunk, which keeps memory bounded without knowing the total in advance).
    def write(self, summary: list[dict[str, Any]], admissions: list[dict[str, Any]]) -> None:
        if self.fwf:
            seen: set[str] = set()
            for rec in summary:
                values = summary_values(rec)
                self.summary[0].add(values)
                if len(self.summary) > 1 and rec["bene_id"] not in seen:  # mbsf_d: one record per beneficiary
                    seen.add(rec["bene_id"])
                    self.summary[1].add(values)
            for a in admissions:
                self.medpar.add(medpar_values(a))
            for w in [*self.summary, self.medpar]:
                self._append(w)
        else:
            self.den.write_rows(sas_denominator_row(rec, self.era) for rec in summary)
            self.ip.write_rows(sas_inpatient_row(a, self.era) for a in admissions)

    def _append(self, w: FwfWriter) -> None:
        names = w.data_names()
        if w.base not in self._streams:
            self._streams[w.base] = [(self.folder / n).open("wb") for n in names]
        streams = self._streams[w.base]
        per = -(-len(w.buffer) // len(names)) if w.buffer else 0
        for i, f in enumerate(streams):
            rows = w.buffer[i * per:(i + 1) * per]
            if rows:
                f.write(w.eol.join(rows) + w.eol)
        w.buffer = []

    def close(self, stats: YearStats, geo, size: int, seed: int, r_def: random.Random) -> dict[str, Any]:
        ctx, year = self.ctx, self.year
        files: dict[str, Any] = {}
        if self.fwf:
            self._plant_bytes(seed, size, geo, r_def)
            for w in [*self.summary, self.medpar]:
                self._append(w)
            for streams in self._streams.values():
                for f in streams:
                    f.close()
            for w in [*self.summary, self.medpar]:
                kind = w.base.split(f"_{REQUEST['res']}")[0]
                data_bytes = 0
                rows_by_part = {}
                for name in w.data_names():
                    path = self.folder / name
                    data_bytes += path.stat().st_size
                    rows_by_part[name] = _count_lines(path)
                key = ("Maximum Possible Record Length" if kind.startswith("mbsf") and year >= 2015
                       else "Exact File Record Length (Bytes in Variable Block)")
                terminator = {0: "- End of Document -", 1: "End of Document", 2: "Note: Dates are in YYYYMMDD format."}[year % 3]
                fts = self.folder / f"{w.base}.fts"
                misaligned = write_fts(fts, w, year=year, description=f"{kind.upper().replace('_', ' ')} {year}",
                                       data_bytes=data_bytes, length_key=key, terminator=terminator)
                ctx.manifest.add_file(ctx.root, fts, "medicare_fts", year=year, table=kind)
                for name, rows in rows_by_part.items():
                    ctx.manifest.add_file(ctx.root, self.folder / name, "medicare_fwf", year=year, table=kind, rows=rows)
                files[kind] = {"fts": fts.relative_to(ctx.root).as_posix(),
                               "data": {(self.folder / n).relative_to(ctx.root).as_posix(): rows
                                        for n, rows in rows_by_part.items()},
                               "records": w.records, "record_length": w.record_length, "columns": len(w.layout),
                               "rejects": dict(w.rejects), "loaded": w.records - sum(w.rejects.values()),
                               "line_end": "CRLF" if w.eol == b"\r\n" else "LF",
                               "fts_length_key": key, "fts_terminator": terminator,
                               "fts_misaligned_lines": misaligned,
                               "uniform": UNIFORM[kind]}
                if misaligned:
                    ctx.manifest.defect(f"medicare.{year}.fts_misaligned_row", len(misaligned),
                                        "an FTS column row whose short name overflows into the type field",
                                        [f"{fts.name}:{n}" for n in misaligned])
        else:
            for writer, target, kind in ((self.den, self.den_path, "denominator"), (self.ip, self.ip_path, "inpatient")):
                writer.close()
                dta_to_sas7bdat(writer.path, target)
                writer.path.unlink()
                ctx.manifest.add_file(ctx.root, target, "medicare_sas7bdat", year=year, table=kind, rows=writer.rows)
                files[kind] = {"data": {target.relative_to(ctx.root).as_posix(): writer.rows}, "records": writer.rows,
                               "rejects": {}, "loaded": writer.rows, "columns": len(writer.columns),
                               "uniform": UNIFORM[f"{kind}/{self.era}"],
                               "date_form": "yyyymmdd_number" if self.era == "old" else "sas_days",
                               "year_digits": 2 if self.era == "old" else 4}
        d = stats.defects
        expected = {
            "year": year,
            "format": "fwf" if self.fwf else "sas7bdat",
            "files": files,
            "summary": {
                "records": stats.summary_records,
                "beneficiaries": stats.benes,
                "enrollments": stats.enrollments,
                "deaths": stats.deaths,
                "duplicate_records": d.get("enrl_duplicate", 0),
                "invalid_state_records": stats.records_with_state_99,
                "age_out_of_range": stats.records_with_age_999,
                "two_state_beneficiaries": d.get("enrl_two_states", 0),
            },
            "admissions": {
                "records": stats.admissions_records,
                "valid": stats.admissions_valid,
                "duplicate": d.get("adm_duplicate", 0),
                "foreign_key": d.get("adm_dangling", 0) + d.get("adm_state_mismatch", 0),
                "primary_key": d.get("adm_missing_date", 0),
                "dangling": d.get("adm_dangling", 0),
                "state_mismatch": d.get("adm_state_mismatch", 0),
            },
            "identity_typos": {k: sorted(v) for k, v in stats.typos.items()},
            "defect_examples": stats.ids,
        }
        a = expected["admissions"]
        assert a["records"] == a["valid"] + a["duplicate"] + a["foreign_key"] + a["primary_key"], "sandbox bug"
        for name, count in d.items():
            ctx.manifest.defect(f"medicare.{year}.{name}", count, DEFECT_TEXT[name], stats.ids.get(name))
        for kind, info in files.items():
            for reason, count in info["rejects"].items():
                ctx.manifest.defect(f"medicare.{year}.{kind}.{reason}", count, REJECT_TEXT[reason])
        return expected

    def _plant_bytes(self, seed: int, size: int, geo, r: random.Random) -> None:
        """Byte-level defects of real deliveries, on records of ghost beneficiaries."""
        county = geo["05"][0]
        zip9 = county.zips[0] + "0000"
        base = 500_000
        for w in self.summary[:1]:
            for n, reason in enumerate(("short_record", "long_record", "non_numeric")):
                ghost = _ghost(seed, size, base + n)
                ghost.entry, ghost.homes = self.year, [(0, county, zip9)]
                w.add(summary_values(summary_record(ghost, self.year, county, zip9, r)))
                line = w.buffer.pop()
                w.records -= 1
                if reason == "short_record":
                    line = line[:-7]
                elif reason == "long_record":
                    line = line + b"XYZ"
                else:
                    s = w.field_slice("AGE")
                    line = line[:s.start] + b"7O" .rjust(s.stop - s.start) + line[s.stop:]
                w.add_raw(line, reason)
        for n, reason in enumerate(("short_record", "invalid_date", "non_numeric")):
            ghost = _ghost(seed, size, base + 10 + n)
            a = admission_records(ghost, self.year, county, zip9, 1, r, [10**9 + n], seed)[0]
            self.medpar.add(medpar_values(a))
            line = self.medpar.buffer.pop()
            self.medpar.records -= 1
            if reason == "short_record":
                line = line[:-40]
            elif reason == "invalid_date":
                s = self.medpar.field_slice("DSCHRGDT")
                line = line[:s.start] + f"{self.year}0231".encode() + line[s.stop:]
            else:
                s = self.medpar.field_slice("LOSCNT")
                line = line[:s.start] + b" 1O" + line[s.stop:]
            self.medpar.add_raw(line, reason)


DEFECT_TEXT = {
    "enrl_two_states": "a beneficiary reported by two states in the year of a move (state_count 2)",
    "enrl_invalid_state": "a summary record with SSA state code 99 (no such state)",
    "enrl_age_out_of_range": "a summary record with age 999",
    "enrl_duplicate": "an exact duplicate summary record",
    "adm_duplicate": "an exact duplicate stay (DUPLICATE)",
    "adm_dangling": "a stay of a beneficiary enrolled in no year (FOREIGN KEY)",
    "adm_state_mismatch": "a stay in a state the beneficiary is not enrolled in that year (FOREIGN KEY)",
    "adm_missing_date": "a stay without an admission date (PRIMARY KEY)",
}
REJECT_TEXT = {
    "short_record": "a record shorter than the FTS record length",
    "long_record": "a record longer than the FTS record length",
    "non_numeric": "a non-numeric value in a NUM column",
    "invalid_date": "an impossible date (Feb 31) in a DATE column",
}


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            count += block.count(b"\n")
    return count


def _yyyymmdd(d: date | None) -> float | None:
    return None if d is None else float(d.strftime("%Y%m%d"))


def _sas_day(d: date | None) -> float | None:
    return None if d is None else float((d - SAS_EPOCH).days)


def sas_denominator_row(rec: dict[str, Any], era: str) -> list[Any]:
    if era == "old":
        return [rec["bene_id"], rec["year"] % 100, rec["state"], rec["county"], int(rec["zip9"]),
                _yyyymmdd(rec["dob"]), _yyyymmdd(rec["dod"]), rec["sex"], rec["race"], rec["age"], rec["orec"],
                rec["crec"], "".join(rec["hmo"]), rec["hmo_mo"], "".join(rec["buyin"]), rec["buyin_mo"]]
    return [rec["bene_id"], rec["year"], rec["state"], rec["county"], rec["zip9"], _sas_day(rec["dob"]),
            _sas_day(rec["dod"]), _sas_day(rec["ndi_dod"]), rec["sex"], rec["race"], rec["rti_race"], rec["age"],
            rec["orec"], rec["crec"], *rec["hmo"], rec["hmo_mo"], *rec["buyin"], rec["buyin_mo"]]


def sas_inpatient_row(a: dict[str, Any], era: str) -> list[Any]:
    am = a["amounts"]
    if era == "old":
        diags = (a["diags"] + [""] * 10)[:10]
        return [a["bene_id"], a["state"], a["zip5"], _yyyymmdd(a["adm"]), _yyyymmdd(a["dis"]),
                float(a["day"]) if a["adm"] else None, a["type"], a["src"], float(a["dstntn"]), a["dschrg"], a["los"],
                *diags, am["DRGPRICE"], am["PMT_AMT"], am["DED_AMT"], am["COIN_AMT"]]
    diags = (a["diags"] + [""] * 25)[:25]
    return [a["bene_id"], a["year"], a["state"], a["zip9"], _sas_day(a["adm"]), _sas_day(a["dis"]),
            a["day"] if a["adm"] else "", a["type"], a["src"], a["dstntn"], a["dschrg"], a["los"], *diags,
            am["DRGPRICE"], am["PMT_AMT"], am["DED_AMT"], am["COIN_AMT"]]


def generate(ctx) -> None:
    years = tuple(sorted({*ctx.scale.medicare_sas_years, *ctx.scale.medicare_fwf_years}))
    for y in years:
        if not 1999 <= y <= 2030:
            raise ValueError(f"Medicare year {y} is outside 1999-2030")
    if any(y >= 2011 for y in ctx.scale.medicare_sas_years) or any(y < 2011 for y in ctx.scale.medicare_fwf_years):
        raise ValueError("SAS7BDAT years must be 1999-2010 and fixed-width years 2011 or later")
    geo = geography(ctx.seed)
    write_crosswalks(ctx, geo)
    size = int(ctx.scale.medicare_benes * POPULATION_FACTOR)
    for year in years:
        expected = generate_year(ctx, year, geo, size, years)
        path = ctx.path("expected", f"medicare_{year}.json")
        path.write_text(json.dumps(expected, indent=2, sort_keys=True))
        ctx.manifest.add_file(ctx.root, path, "medicare_expected", year=year)
        ctx.manifest.count(f"medicare.{year}.summary_records", expected["summary"]["records"])
        ctx.manifest.count(f"medicare.{year}.admission_records", expected["admissions"]["records"])
    ctx.manifest.count("medicare.years", list(years))
    ctx.manifest.count("medicare.population", size)
