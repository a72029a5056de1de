"""US state codes as the Medicare files carry them: SSA 2-digit state codes (not FIPS), with the postal
abbreviation and the FIPS code they map to. Shipped as versioned data in `reference/us_states.csv`
(SSA codes run alphabetically by state name with DC at 09, PR at 40 and VI at 48; FIPS codes are the
ANSI/FIPS 5-2 state codes)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "reference"


@dataclass(frozen=True)
class State:
    ssa2: str
    state_id: str  # postal abbreviation
    fips2: str
    name: str


@lru_cache(maxsize=1)
def us_states() -> tuple[State, ...]:
    with (DATA / "us_states.csv").open(newline="", encoding="utf-8") as f:
        return tuple(State(r["ssa2"], r["state_id"], r["fips2"], r["state_name"]) for r in csv.DictReader(f))


def state_by_ssa(ssa2: str) -> State | None:
    return {s.ssa2: s for s in us_states()}.get(ssa2)
