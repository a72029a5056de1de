"""The CMS Medicaid Provider Spending parquet (`site/<MEDICAID_PATH>`), streamed in row groups.

Seven columns with the published types: the NPIs and the code as strings, CLAIM_FROM_MONTH a date (first
of the month), the two counts int64, TOTAL_PAID double. Billing NPIs come from the provider universe
with a skewed (Zipf-like) distribution, every spending provider appearing at least once; servicing NPIs
are often null or equal to the billing one; codes come from the code universe, each appearing at least
once. Planted, at exact counts: NPIs failing the Luhn check (the `invalid` providers) and garbage NPI
strings (non-numeric or of the wrong length), as the real file's unresolved triage shows.
"""

from __future__ import annotations

import os
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from include.sandbox import codes as cu
from include.sandbox import providers as pv
from include.sandbox.core import MEDICAID_PATH, SITE, is_valid_npi, make_npi, rng

SCHEMA = pa.schema([
    ("BILLING_PROVIDER_NPI_NUM", pa.string()),
    ("SERVICING_PROVIDER_NPI_NUM", pa.string()),
    ("HCPCS_CODE", pa.string()),
    ("CLAIM_FROM_MONTH", pa.date32()),
    ("TOTAL_UNIQUE_BENEFICIARIES", pa.int64()),
    ("TOTAL_CLAIMS", pa.int64()),
    ("TOTAL_PAID", pa.float64()),
])
ROW_GROUP = 500_000
MONTHS = [date(y, m, 1) for y in range(2018, 2025) for m in range(1, 13)]
GARBAGE_NPIS = ("UNKNOWN", "000000000", "12345", "1X23456789", "99999999999")


def generate(ctx) -> None:
    seed, scale, m = ctx.seed, ctx.scale, ctx.manifest
    n_npis, n_rows = scale.spending_npis, max(scale.spending_rows, scale.spending_npis)
    code_list = [c.code for c in cu.codes(seed, scale.hcpcs_codes)]
    r = rng(seed, "medicaid")
    path = ctx.path(SITE, *MEDICAID_PATH.split("/"))
    tmp = path.with_name(path.name + ".tmp")
    garbage_rows = max(1, n_rows // 20_000)  # rows whose servicing NPI is a garbage string
    garbage_used: set[str] = set()  # at most len(GARBAGE_NPIS); everything else is known by construction
    written = 0
    with pq.ParquetWriter(tmp, SCHEMA, compression="snappy") as writer:
        while written < n_rows:
            size = min(ROW_GROUP, n_rows - written)
            cols: dict[str, list] = {name: [] for name in SCHEMA.names}
            for k in range(size):
                row = written + k
                # The first n_npis rows cover every provider and the first codes cover every code once.
                index = row if row < n_npis else min(int(n_npis * r.paretovariate(1.2)) - n_npis, n_npis - 1) % n_npis
                billing = make_npi(index, valid=pv.category_of(seed, index, n_npis) != "invalid")
                code = code_list[row % len(code_list)] if row < len(code_list) else code_list[int(len(code_list) * r.random() ** 2)]
                u = r.random()
                if row % (n_rows // garbage_rows) == 7:
                    servicing = GARBAGE_NPIS[(row // (n_rows // garbage_rows)) % len(GARBAGE_NPIS)]
                elif u < 0.35:
                    servicing = None
                elif u < 0.75:
                    servicing = billing
                else:
                    j = r.randrange(n_npis)
                    servicing = make_npi(j, valid=pv.category_of(seed, j, n_npis) != "invalid")
                benes = 11 + int(r.expovariate(1 / 40))
                claims = benes + int(r.expovariate(1 / 60))
                cols["BILLING_PROVIDER_NPI_NUM"].append(billing)
                cols["SERVICING_PROVIDER_NPI_NUM"].append(servicing)
                cols["HCPCS_CODE"].append(code)
                cols["CLAIM_FROM_MONTH"].append(MONTHS[r.randrange(len(MONTHS))])
                cols["TOTAL_UNIQUE_BENEFICIARIES"].append(benes)
                cols["TOTAL_CLAIMS"].append(claims)
                cols["TOTAL_PAID"].append(round(claims * r.lognormvariate(3.5, 1.0), 2))
                if servicing in GARBAGE_NPIS:
                    garbage_used.add(servicing)
            writer.write_table(pa.table(cols, schema=SCHEMA), row_group_size=ROW_GROUP)
            written += size
    os.replace(tmp, path)

    # The first n_npis rows bill every provider once and servicing NPIs are drawn from the same
    # providers, so the distinct NPIs are the providers plus the garbage strings used.
    invalid = sorted(make_npi(i, valid=False) for i in range(n_npis) if pv.category_of(seed, i, n_npis) == "invalid")
    assert not any(is_valid_npi(n) for n in invalid)
    garbage = sorted(garbage_used)
    codes_seen = set(code_list[: min(n_rows, len(code_list))])
    m.add_file(ctx.root, path, "medicaid_spending", rows=n_rows)
    m.count("spending.rows", n_rows)
    m.count("spending.distinct_npis", n_npis + len(garbage))
    m.count("spending.distinct_billing_npis", n_npis)
    m.count("spending.distinct_hcpcs", len(codes_seen))
    by_source: dict[str, int] = {}
    for c in cu.codes(seed, scale.hcpcs_codes):
        if c.code in codes_seen:
            by_source[c.source] = by_source.get(c.source, 0) + 1
    for source, count in sorted(by_source.items()):
        m.count(f"spending.hcpcs_source.{source}", count)
    m.count("spending.invalid_npis", len(invalid))
    m.defect("medicaid.invalid_npi_check_digit", len(invalid), "10-digit NPIs that fail the Luhn check (prefix 80840)",
             invalid)
    m.defect("medicaid.garbage_npi", len(garbage), "servicing NPI values that are not 10 digits (non-numeric, short, long)",
             garbage)
