"""The sandbox's HCPCS/CPT codes: which code is known to which source.

Code `i` of `hcpcs_codes` is fixed by (seed, i). Its `source` says where a resolver finds it:

    api            HCPCS Level II (letter + 4 digits), in the Clinical Tables API (some obsolete)
    fallback_cpt   5-character CPT (e.g. 99213, 0001U), only in the CMS archives -> fallback CSV
    fallback_l2    Level II in the CMS archives but not in the API
    unknown        known to no source: CPT-shaped, CDT (D1234), revenue codes (0450), garbage (H)015)

The real NLM table is Level II only, which is why the fallback exists; the shares follow the seed's
real run (about 40 % of codes unresolved by the API).
"""

from __future__ import annotations

from dataclasses import dataclass

from include.sandbox.core import rng, stable_fraction

SOURCE_SHARES: tuple[tuple[str, float], ...] = (
    ("api", 0.55),
    ("fallback_cpt", 0.30),
    ("fallback_l2", 0.05),
    ("unknown", 0.10),
)
LEVEL2_LETTERS = "ABCEGHJKLMQV"
GARBAGE = ("H)015", "NT/WKN", "0000", "XXXXX", "99213-25")
TERMS = ("Ambulance service", "Injection", "Office visit", "Home health aide", "Durable medical equipment",
         "Laboratory panel", "Behavioral health counseling", "Transportation", "Physical therapy", "Dental cleaning",
         "Wheelchair accessory", "Infusion supplies", "Vaccine administration", "Screening", "Case management")
QUALIFIERS = ("per 15 minutes", "per visit", "per diem", "each", "up to 1 mg", "established patient", "new patient",
              "non-emergency transport", "with supervision", "includes supplies")


@dataclass(frozen=True)
class Code:
    index: int
    code: str
    source: str
    short_desc: str
    long_desc: str
    add_dt: str  # YYYYMMDD, as the API's extra fields show them
    act_eff_dt: str
    term_dt: str  # "" unless obsolete
    obsolete: bool
    is_noc: bool


def source_of(seed: int, index: int) -> str:
    u = stable_fraction(seed, "code-source", index)
    threshold = 0.0
    for name, share in SOURCE_SHARES:
        threshold += share
        if u < threshold:
            return name
    return "unknown"


def _shape(r, source: str, index: int) -> str:
    if source in ("api", "fallback_l2"):
        return f"{LEVEL2_LETTERS[index % len(LEVEL2_LETTERS)]}{(index * 37 + r.randint(0, 36)) % 10000:04d}"
    if source == "fallback_cpt":
        kind = r.random()
        if kind < 0.85:
            return f"{10000 + (index * 53 + r.randint(0, 52)) % 90000:05d}"
        if kind < 0.93:
            return f"{index % 10000:04d}U"  # PLA
        return f"{index % 10000:04d}{'FT'[index % 2]}"  # category II / III
    kind = r.random()
    if kind < 0.5:
        return f"{10000 + (index * 71 + r.randint(0, 70)) % 90000:05d}"  # CPT-shaped, in no source
    if kind < 0.75:
        return f"D{index % 10000:04d}"  # CDT
    if kind < 0.93:
        return f"0{index % 1000:03d}"  # revenue code
    return GARBAGE[index % len(GARBAGE)]


def code(seed: int, index: int) -> Code:
    r = rng(seed, "code", index)
    source = source_of(seed, index)
    text = f"{r.choice(TERMS)}, {r.choice(QUALIFIERS)}"
    obsolete = source == "api" and r.random() < 0.05
    add_year = r.randint(1990, 2024)
    return Code(
        index=index,
        code=_shape(r, source, index),
        source=source,
        short_desc=text[:28].rstrip(" ,"),
        long_desc=text[0].upper() + text[1:].lower(),
        add_dt=f"{add_year}0101",
        act_eff_dt=f"{max(add_year, 2003)}0101",
        term_dt="20241231" if obsolete else "",
        obsolete=obsolete,
        is_noc=source == "api" and r.random() < 0.02,
    )


def codes(seed: int, count: int) -> list[Code]:
    """The distinct codes of the spending data (duplicate shapes are dropped, so len() may be < count)."""
    seen: set[str] = set()
    out = []
    for i in range(count):
        c = code(seed, i)
        if c.code not in seen:
            seen.add(c.code)
            out.append(c)
    return out
