"""The federated views over the raw Medicare tables: which raw tables feed them, and for every target
column the first source column found in each table (NSAPH's candidate lists), conditioned by its type.

`medicare.ps` unions every beneficiary summary table (`mbsf_ab_summary_<year>`,
`mbsf_abcd_summary_<year>`, the 1999-2010 denominators `mcr_bene_<year>`); `medicare.ip` every
inpatient table (`medpar_all_file_<year>`, `mcr_ip_<year>`). The SELECT for each table is generated
from the columns the table really has (information_schema), so a year with other names, or without a
column, still fits: a missing optional column is NULL and is logged.

Conditioning, per the seed ("Combining raw files into a single view"):
- year: to a 4-digit integer (two-digit years 50-99 -> 19xx, 00-49 -> 20xx; missing -> the file's year);
- dates (dob, dod, admission, discharge): DATE columns as they are; character dates parsed (YYYYMMDD,
  YYYY-MM-DD, DDMONYYYY, YYYYDDD); numeric dates are SAS dates (days since 1960) or YYYYMMDD numbers,
  decided per column from a sample of its values;
- state: the SSA code kept as `ssa2`, the postal code as `state` and the FIPS code as `fips2` through
  `medicare.us_states` (an unknown code such as 99 gives NULL state);
- zip: a 9-digit ZIP split into `zip` and `zip4`, both integers (numeric ZIPs that lost their leading
  zeros are handled);
- monthly indicators (12 columns or one 12-character string) into one array.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from include.db.postgres import validate_identifier
from include.medicare.uniform import match_uniform

log = logging.getLogger("claimsflow.medicare")

RAW_SCHEMA = "medicare_raw"
PS_TABLE = re.compile(r"(?P<kind>mbsf_abcd\w*|mbsf_ab\w*|mcr_bene)_(?P<year>\d{4})")
IP_TABLE = re.compile(r"(?P<kind>medpar\w*|mcr_ip)_(?P<year>\d{4})")

TEXT_TYPES = {"text", "character varying", "character"}
NUMBER_TYPES = {"double precision", "numeric", "real", "integer", "bigint", "smallint"}
MONTHS = [f"{m:02d}" for m in range(1, 13)]


@dataclass
class RawTable:
    name: str
    year: int
    columns: dict[str, str]  # name -> information_schema data_type, in table order
    generated: set[str] = field(default_factory=set)  # the uniform columns ingestion generated

    def originals(self) -> list[str]:
        return [c for c in self.columns if c not in self.generated]

    def find(self, candidates: Sequence[str]) -> str | None:
        """The first candidate the table has among its own (not generated) columns."""
        own = set(self.originals())
        return next((c for c in candidates if c in own), None)


def raw_tables(conn: psycopg.Connection, pattern: re.Pattern[str]) -> list[RawTable]:
    """The raw tables whose names match `pattern`, in year order, with their columns."""
    rows = conn.execute(
        """SELECT c.table_name, c.column_name, c.data_type, c.is_generated
             FROM information_schema.columns c
             JOIN information_schema.tables t USING (table_schema, table_name)
            WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE'
            ORDER BY c.table_name, c.ordinal_position""",
        (RAW_SCHEMA,),
    ).fetchall()
    tables: dict[str, RawTable] = {}
    for table, column, data_type, generated in rows:
        m = pattern.fullmatch(table)
        if not m:
            continue
        t = tables.setdefault(table, RawTable(table, int(m["year"]), {}))
        t.columns[column] = data_type
        if generated == "ALWAYS":
            t.generated.add(column)
    return sorted(tables.values(), key=lambda t: (t.year, t.name))


# ------------------------------------------------------------------------------ typed expressions

def _col(name: str) -> sql.Identifier:
    return sql.Identifier("r", name)


class Exprs:
    """SQL expressions over one raw table (aliased `r`), by the source column's type."""

    def __init__(self, conn: psycopg.Connection, table: RawTable, fn_schema: str) -> None:
        self.conn, self.t, self.fn = conn, table, fn_schema

    def f(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.fn, name)

    def kind(self, column: str) -> str:
        data_type = self.t.columns[column]
        if data_type in TEXT_TYPES:
            return "text"
        if data_type in NUMBER_TYPES:
            return "number"
        if data_type == "date":
            return "date"
        if data_type.startswith("timestamp"):
            return "timestamp"
        return "other"

    def text(self, column: str | None, pad: int | None = None) -> sql.Composable:
        if column is None:
            return sql.SQL("NULL::text")
        c, kind = _col(column), self.kind(column)
        if kind == "text":
            expr = sql.SQL("nullif(btrim({}), '')").format(c)
        elif kind == "number":  # a code stored as a number: 1.0 -> '1'
            expr = sql.SQL("(CASE WHEN {c} = trunc({c}) THEN ({c})::bigint::text ELSE ({c})::text END)").format(c=c)
        else:
            expr = sql.SQL("({})::text").format(c)
        if pad:  # codes that lost their leading zeros ('1' -> '01')
            expr = sql.SQL("lpad({}, {}, '0')").format(expr, sql.Literal(pad))
        return expr

    def integer(self, column: str | None) -> sql.Composable:
        if column is None:
            return sql.SQL("NULL::integer")
        c, kind = _col(column), self.kind(column)
        if kind == "text":
            return sql.SQL("{}({})").format(self.f("to_int"), c)
        if kind == "number":
            return sql.SQL("(CASE WHEN abs({c}) < 2147483647 THEN round({c})::integer END)").format(c=c)
        return sql.SQL("NULL::integer")

    def numeric(self, column: str | None) -> sql.Composable:
        if column is None:
            return sql.SQL("NULL::numeric")
        c, kind = _col(column), self.kind(column)
        if kind == "number":
            return sql.SQL("({})::numeric").format(c)
        if kind == "text":
            return sql.SQL("(CASE WHEN btrim({c}) ~ '^-?[0-9]+(\\.[0-9]*)?$' THEN btrim({c})::numeric END)").format(c=c)
        return sql.SQL("NULL::numeric")

    def date(self, column: str | None) -> sql.Composable:
        if column is None:
            return sql.SQL("NULL::date")
        c, kind = _col(column), self.kind(column)
        if kind == "date":
            return c
        if kind == "timestamp":
            return sql.SQL("({})::date").format(c)
        if kind == "text":
            return sql.SQL("{}({})").format(self.f("parse_date"), c)
        if kind == "number":
            return sql.SQL("{}(({})::double precision)").format(self.f(self.numeric_date_form(column)), c)
        return sql.SQL("NULL::date")

    def numeric_date_form(self, column: str) -> str:
        """`yyyymmdd_date` when the column's values are 8-digit numbers, else `sas_date` (days since 1960)."""
        top = self.conn.execute(
            sql.SQL("SELECT max(abs(v)) FROM (SELECT {c} AS v FROM {t} WHERE {c} IS NOT NULL AND {c} <> 0 LIMIT 1000) s")
            .format(c=sql.Identifier(column), t=sql.Identifier(RAW_SCHEMA, self.t.name))
        ).fetchone()[0]
        return "yyyymmdd_date" if top is not None and top >= 1e7 else "sas_date"

    def year(self) -> sql.Composable:
        column = "year" if "year" in self.t.columns else None
        return sql.SQL("{}({}, {})").format(self.f("year4"), self.integer(column), sql.Literal(self.t.year))

    def ssa2(self) -> sql.Composable:
        return self.text("state" if "state" in self.t.columns else None, pad=2)

    def zip_parts(self) -> tuple[sql.Composable, sql.Composable]:
        """(zip, zip4): from the original ZIP column with its own type (a numeric ZIP is split
        arithmetically), else from the uniform text column."""
        source = match_uniform(self.t.originals(), source=self.t.name, warn=False).get("zip")
        column = source or ("zip" if "zip" in self.t.columns else None)
        if column is None:
            return sql.SQL("NULL::integer"), sql.SQL("NULL::integer")
        c = _col(column)
        if self.kind(column) == "number":
            c = sql.SQL("({})::double precision").format(c)
        elif self.kind(column) != "text":
            c = sql.SQL("({})::text").format(c)
        return (sql.SQL("{}({})").format(self.f("zip5"), c), sql.SQL("{}({})").format(self.f("zip4"), c))

    def monthly(self, single: Sequence[str], monthly: Sequence[str]) -> sql.Composable:
        """Twelve monthly one-character indicators as a text[12]: from 12 columns or one 12-char string."""
        for pattern in monthly:
            names = [pattern.format(m=m) for m in MONTHS]
            if all(n in self.t.columns for n in names):
                return sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(self.text(n) for n in names))
        column = self.t.find(single)
        if column is not None:
            return sql.SQL("string_to_array(rpad({}, 12), NULL)").format(self.text(column))
        return sql.SQL("NULL::text[]")


# ----------------------------------------------------------------------------------- the views

def _missing(table: RawTable, target: str, candidates: Sequence[str]) -> None:
    log.warning("%s.%s: no column for %s (looked for %s); it is NULL there", RAW_SCHEMA, table.name, target,
                ", ".join(candidates))


def _pick(table: RawTable, target: str, candidates: Sequence[str], *, required: bool = True) -> str | None:
    column = table.find(candidates)
    if column is None and required:
        _missing(table, target, candidates)
    return column


PS_CANDIDATES = {
    "dob": ("dob", "bene_dob", "bene_birth_dt"),
    "dod": ("death_dt", "bef_dod", "bene_dod", "bene_death_dt"),
    "dod_ndi": ("ndi_death_dt",),
    "age": ("age", "bene_age_at_end_ref_yr", "bene_age_at_beg_ref_yr"),
    "ssa3": ("cnty_cd", "bene_county_cd", "ssa_county", "county_cd"),
    "sex": ("sex", "bene_sex_ident_cd"),
    "race": ("race", "bene_race_cd"),
    "race_rti": ("rti_race_cd", "race_rti"),
    "hmo_cvg_count": ("hmo_mo", "hmocovg", "bene_hmo_cvrage_tot_mons"),
    "buyin_cvg_count": ("buyin_mo", "buycovg", "state_buy_in_mo", "bene_state_buyin_tot_mons"),
    "orec": ("orec", "orig_ent", "bene_entlmt_rsn_orig"),
    "curec": ("crec", "cur_ent", "bene_entlmt_rsn_curr"),
}
OPTIONAL = {"dod_ndi", "race_rti", "buyin_cvg_count", "curec"}


def _common(e: Exprs, table: RawTable, us_states: sql.Identifier) -> tuple[list[tuple[str, sql.Composable]], sql.Composable]:
    """The leading columns shared by ps and ip, and the join that turns SSA codes into states."""
    zip5, zip4 = e.zip_parts()
    cols = [
        ("source_table", sql.Literal(table.name)),
        ("source_file", _col("source_file")),
        ("record_number", _col("record_number")),
        ("bene_id", e.text("bene_id" if "bene_id" in table.columns else None)),
        ("year", e.year()),
        ("state", sql.SQL("s.state_id")),
        ("ssa2", e.ssa2()),
        ("fips2", sql.SQL("s.fips2")),
        ("zip", zip5),
        ("zip4", zip4),
    ]
    join = sql.SQL("LEFT JOIN {} s ON s.ssa2 = {}").format(us_states, e.ssa2())
    return cols, join


def _select(table: RawTable, cols: list[tuple[str, sql.Composable]], join: sql.Composable) -> sql.Composed:
    return sql.SQL("SELECT {cols} FROM {t} r {join}").format(
        cols=sql.SQL(", ").join(sql.SQL("{} AS {}").format(expr, sql.Identifier(name)) for name, expr in cols),
        t=sql.Identifier(RAW_SCHEMA, table.name), join=join)


def ps_select(conn: psycopg.Connection, table: RawTable, schema: str) -> sql.Composed:
    e = Exprs(conn, table, schema)
    cols, join = _common(e, table, sql.Identifier(schema, "us_states"))
    pick = {target: _pick(table, target, cands, required=target not in OPTIONAL) for target, cands in PS_CANDIDATES.items()}
    cols += [
        ("dob", e.date(pick["dob"])),
        ("dod", e.date(pick["dod"])),
        ("dod_ndi", e.date(pick["dod_ndi"])),
        ("age", e.integer(pick["age"])),
        ("ssa3", e.text(pick["ssa3"], pad=3)),
        ("sex", e.text(pick["sex"])),
        ("race", e.text(pick["race"])),
        ("race_rti", e.text(pick["race_rti"])),
        ("hmo_indicators", e.monthly(("hmoind",), ("hmoind{m}", "bene_hmo_ind_{m}"))),
        ("hmo_cvg_count", sql.SQL("coalesce({}, 0)").format(e.integer(pick["hmo_cvg_count"]))),
        ("buyin_indicators", e.monthly(("medicare_buy_in", "buyin"), ("buyin{m}", "bene_mdcr_entlmt_buyin_ind_{m}"))),
        ("buyin_cvg_count", sql.SQL("coalesce({}, 0)").format(e.integer(pick["buyin_cvg_count"]))),
        ("orec", e.integer(pick["orec"])),
        ("curec", e.integer(pick["curec"])),
    ]
    return _select(table, cols, join)


def _dgns(n: int) -> tuple[str, ...]:
    return (f"medpar_dgns_cd_{n}", f"dgns_cd{n:02d}", f"dgns_cd{n}", f"dgns_{n}_cd", f"dgnscd{n}")


IP_CANDIDATES = {
    "admission_date": ("medpar_admsn_dt", "admsn_dt", "admsndt"),
    "discharge_date": ("medpar_dschrg_dt", "dschrg_dt", "dschrgdt"),
    "adm_day_of_week": ("medpar_admsn_day_cd", "admsn_day_cd", "admsnday"),
    "admsn_type_cd": ("ip_admsn_type_cd", "type_adm", "medpar_ip_admsn_type_cd"),
    "src_admsn_cd": ("src_ip_admsn_cd", "src_adms", "medpar_src_ip_admsn_cd"),
    "dschrg_dstntn_cd": ("dschrg_dstntn_cd", "dstntncd", "medpar_dschrg_dstntn_cd"),
    "dschrgcd": ("dschrgcd", "bene_dschrg_stus_cd", "medpar_bene_dschrg_stus_cd"),
    "los_day_cnt": ("los_day_cnt", "loscnt", "medpar_los_day_cnt"),
}
AMOUNTS = {  # target -> the short name of the 2011+ files and of the SAS files
    "drg_price_amt": ("drgprice",),
    "drg_outlier_pmt_amt": ("outlramt",),
    "pass_thru_amt": ("passthru",),
    "mdcr_pmt_amt": ("pmt_amt",),
    "bene_blood_ddctbl_amt": ("blddedam",),
    "bene_prmry_pyr_amt": ("prpayamt",),
    "bene_ip_ddctbl_amt": ("ded_amt",),
    "bene_pta_coinsrnc_amt": ("coin_amt",),
}


def ip_select(conn: psycopg.Connection, table: RawTable, schema: str) -> sql.Composed:
    e = Exprs(conn, table, schema)
    cols, join = _common(e, table, sql.Identifier(schema, "us_states"))
    pick = {target: _pick(table, target, cands) for target, cands in IP_CANDIDATES.items()}
    diagnoses = [e.text(table.find(_dgns(n))) for n in range(1, 26) if table.find(_dgns(n))]
    if not diagnoses:
        _missing(table, "diagnoses", _dgns(1))
    cols += [
        ("admission_date", e.date(pick["admission_date"])),
        ("discharge_date", e.date(pick["discharge_date"])),
        ("adm_day_of_week", e.integer(pick["adm_day_of_week"])),
        ("admsn_type_cd", e.text(pick["admsn_type_cd"])),
        ("src_admsn_cd", e.text(pick["src_admsn_cd"])),
        ("dschrg_dstntn_cd", e.text(pick["dschrg_dstntn_cd"], pad=2)),
        ("dschrgcd", e.text(pick["dschrgcd"])),
        ("los_day_cnt", e.integer(pick["los_day_cnt"])),
        ("diagnoses", sql.SQL("array_remove(ARRAY[{}]::text[], NULL)").format(sql.SQL(", ").join(diagnoses))
         if diagnoses else sql.SQL("ARRAY[]::text[]")),
    ]
    for target, shorts in AMOUNTS.items():
        cols.append((target, e.numeric(table.find((target, *shorts, f"medpar_{target}")))))
    return _select(table, cols, join)


def union_view(conn: psycopg.Connection, schema: str, view: str, kind: str) -> tuple[sql.Composed, list[RawTable]]:
    """CREATE VIEW <schema>.<view> as the UNION ALL over the raw tables of `kind` ("ps" or "ip")."""
    validate_identifier(schema, "schema name")
    validate_identifier(view, "view name")
    pattern, build = (PS_TABLE, ps_select) if kind == "ps" else (IP_TABLE, ip_select)
    tables = raw_tables(conn, pattern)
    if not tables:
        raise LookupError(f"no raw {'beneficiary summary' if kind == 'ps' else 'inpatient'} tables in {RAW_SCHEMA}")
    selects = [build(conn, t, schema) for t in tables]
    stmt = sql.SQL("CREATE VIEW {} AS\n{}").format(sql.Identifier(schema, view), sql.SQL("\nUNION ALL\n").join(selects))
    return stmt, tables
