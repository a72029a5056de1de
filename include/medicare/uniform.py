"""The uniform columns every raw Medicare table gets (`bene_id`, `state`, `zip`, `year`), taken from the
first column whose name matches a candidate (case-insensitive; `*` is a wildcard).

The candidate lists are the seed's (NSAPH's documentation), in its order, plus two names NSAPH's own
loader also accepts for the 2011+ fixed-width files (its MEDICARE_KEY_COLUMNS): `zip_cd` (the ZIP of
`mbsf_abcd_summary`) and `medpar_yr_num` (the year of `medpar_all_file`). Without them those files
would have no zip / year.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence

log = logging.getLogger("claimsflow.medicare")

CANDIDATES: dict[str, tuple[str, ...]] = {
    "bene_id": ("bene_id", "intbid", "qid", "bid_5333*"),
    "state": ("state", "ssa_state", "state_code", "bene_rsdnc_ssa_state_cd", "state_cd",
              "medpar_bene_rsdnc_ssa_state_cd"),
    "zip": ("zip", "zipcode", "bene_zip_cd", "bene_zip", "bene_mlg_cntct_zip_cd", "medpar_bene_mlg_cntct_zip_cd",
            "zip_cd"),
    "year": ("year", "enrolyr", "bene_enrollmt_ref_yr", "rfrnc_yr", "medpar_yr_num"),
}


def match_uniform(columns: Sequence[str], *, source: str = "", warn: bool = True) -> dict[str, str | None]:
    """uniform name -> the (lower-case) source column it is taken from, or None (with a warning)."""
    lowered = [c.lower() for c in columns]
    out: dict[str, str | None] = {}
    for uniform, candidates in CANDIDATES.items():
        found = None
        for pattern in candidates:
            hits = [c for c in lowered if fnmatch.fnmatchcase(c, pattern)]
            if hits:
                found = hits[0]
                break
        if found is None and warn:
            log.warning("%s: no column for the uniform %r (candidates: %s); it stays NULL", source or "table",
                        uniform, ", ".join(candidates))
        out[uniform] = found
    return out
