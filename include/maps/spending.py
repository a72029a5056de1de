"""The identifiers of the Medicaid Provider Spending parquet: distinct billing and servicing NPIs and
distinct HCPCS codes, read row group by row group with only those three columns (the file is ~GBs;
the distinct sets are ~2M NPIs and ~11k codes)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from include.common.errors import ClaimsflowError
from include.common.npi import is_valid_npi

NPI_COLUMNS = ("BILLING_PROVIDER_NPI_NUM", "SERVICING_PROVIDER_NPI_NUM")
CODE_COLUMN = "HCPCS_CODE"


@dataclass
class SpendingIdentifiers:
    npis: set[str] = field(default_factory=set)
    codes: set[str] = field(default_factory=set)
    rows: int = 0
    null_npis: int = 0
    null_codes: int = 0

    def npi_rows(self) -> list[tuple[str, bool]]:
        """(npi, passes the check digit) sorted: the rows of maps.npi_wanted."""
        return [(n, is_valid_npi(n)) for n in sorted(self.npis)]

    def code_rows(self) -> list[tuple[str]]:
        return [(c,) for c in sorted(self.codes)]


def _strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        column = pc.cast(column, pa.string())
    return pc.utf8_trim_whitespace(column)


def distinct_identifiers(path: str | Path) -> SpendingIdentifiers:
    path = Path(path)
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ClaimsflowError(f"not a readable parquet file: {exc}", source=str(path)) from exc
    missing = [c for c in (*NPI_COLUMNS, CODE_COLUMN) if c not in pf.schema_arrow.names]
    if missing:
        raise ClaimsflowError(f"the spending parquet lacks column(s) {', '.join(missing)}", source=str(path))
    out = SpendingIdentifiers()
    for group in range(pf.num_row_groups):
        table = pf.read_row_group(group, columns=[*NPI_COLUMNS, CODE_COLUMN])
        out.rows += table.num_rows
        for name in NPI_COLUMNS:
            col = _strings(table.column(name))
            empty = pc.sum(pc.equal(col, "")).as_py() or 0
            out.null_npis += col.null_count + empty
            out.npis.update(v for v in pc.unique(col).to_pylist() if v)
        codes = pc.utf8_upper(_strings(table.column(CODE_COLUMN)))
        out.null_codes += codes.null_count
        out.codes.update(v for v in pc.unique(codes).to_pylist() if v)
    return out


TOTAL_COLUMNS = ("TOTAL_CLAIMS", "TOTAL_UNIQUE_BENEFICIARIES", "TOTAL_PAID")


def provider_totals(path: str | Path) -> Iterator[pa.Table]:
    """Per row group, the spending totals per NPI and role: tables (npi, role, claims, beneficiaries,
    paid) with role `billing` or `servicing`; the caller adds the groups up (an NPI spans row groups).
    Beneficiaries are sums of per-row unique counts, so an upper bound of the distinct number."""
    path = Path(path)
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ClaimsflowError(f"not a readable parquet file: {exc}", source=str(path)) from exc
    missing = [c for c in (*NPI_COLUMNS, *TOTAL_COLUMNS) if c not in pf.schema_arrow.names]
    if missing:
        raise ClaimsflowError(f"the spending parquet lacks column(s) {', '.join(missing)}", source=str(path))
    for group in range(pf.num_row_groups):
        table = pf.read_row_group(group, columns=[*NPI_COLUMNS, *TOTAL_COLUMNS])
        values = {c: pc.cast(table.column(c), pa.float64()) for c in TOTAL_COLUMNS}
        for name, role in zip(NPI_COLUMNS, ("billing", "servicing"), strict=True):
            t = pa.table({"npi": _strings(table.column(name)), **values})
            t = t.filter(pc.not_equal(t.column("npi"), "")).group_by("npi").aggregate(
                [(c, "sum") for c in TOTAL_COLUMNS])
            yield pa.table({"npi": t.column("npi"), "role": pa.array([role] * t.num_rows, pa.string()),
                            "claims": t.column("TOTAL_CLAIMS_sum"),
                            "beneficiaries": t.column("TOTAL_UNIQUE_BENEFICIARIES_sum"),
                            "paid": t.column("TOTAL_PAID_sum")})
