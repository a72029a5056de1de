"""The sandbox's universe of providers and codes, computed by index so any scale streams.

Provider `i` is fully determined by (seed, i): the NPPES generator, the spending generator, the NPI
Registry server data and the Hop Teaming generator all ask `provider(seed, i)` and agree.

Providers 0 .. spending_npis-1 are the ones that appear in the spending data; each has a category
that says where a resolver can find it:

    bulk            in the monthly NPPES file (the API knows it too)
    weekly_update   in the monthly file and again, changed, in a weekly file (the weekly row wins)
    weekly_new      only in a weekly file (enumerated after the monthly cut)
    deactivated     in the monthly file with only the NPI and a deactivation date
    api_only        in no bulk file, but the NPI Registry API knows it
    nowhere         valid check digit, known to nobody (API answers result_count 0)
    invalid         fails the Luhn check: must never be sent to the API

Providers spending_npis .. nppes_rows-1 are "filler": in the monthly file only (real NPPES has
millions of providers that bill no Medicaid). The monthly file therefore holds the spending providers
in IN_MONTHLY plus `filler_indexes()`, a little under nppes_rows rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from include.sandbox.core import make_npi, rng, stable_fraction

# Category shares among spending NPIs (cumulative thresholds over stable_fraction).
CATEGORY_SHARES: tuple[tuple[str, float], ...] = (
    ("invalid", 0.01),
    ("nowhere", 0.02),
    ("api_only", 0.04),
    ("weekly_new", 0.01),
    ("weekly_update", 0.03),
    ("deactivated", 0.01),
    ("bulk", 1.0),
)
IN_MONTHLY = {"bulk", "weekly_update", "deactivated"}
IN_WEEKLY = {"weekly_update", "weekly_new"}
API_KNOWS = {"bulk", "weekly_update", "weekly_new", "api_only", "deactivated"}

# A slice of the NUCC taxonomy (code, grouping, classification, specialization); the NUCC generator
# writes these rows (and more), so every provider taxonomy joins.
TAXONOMIES: tuple[tuple[str, str, str, str], ...] = (
    ("207Q00000X", "Allopathic & Osteopathic Physicians", "Family Medicine", ""),
    ("207R00000X", "Allopathic & Osteopathic Physicians", "Internal Medicine", ""),
    ("207RC0000X", "Allopathic & Osteopathic Physicians", "Internal Medicine", "Cardiovascular Disease"),
    ("207QB0505X", "Allopathic & Osteopathic Physicians", "Internal Medicine", "Hospice and Palliative Medicine"),
    ("208D00000X", "Allopathic & Osteopathic Physicians", "General Practice", ""),
    ("207P00000X", "Allopathic & Osteopathic Physicians", "Emergency Medicine", ""),
    ("208M00000X", "Allopathic & Osteopathic Physicians", "Hospitalist", ""),
    ("208600000X", "Allopathic & Osteopathic Physicians", "Surgery", ""),
    ("2084P0800X", "Allopathic & Osteopathic Physicians", "Psychiatry & Neurology", "Psychiatry"),
    ("363L00000X", "Physician Assistants & Advanced Practice Nursing Providers", "Nurse Practitioner", ""),
    ("363A00000X", "Physician Assistants & Advanced Practice Nursing Providers", "Physician Assistant", ""),
    ("103T00000X", "Behavioral Health & Social Service Providers", "Psychologist", ""),
    ("122300000X", "Dental Providers", "Dentist", ""),
    ("225100000X", "Respiratory, Developmental, Rehabilitative and Restorative Service Providers", "Physical Therapist", ""),
    ("251E00000X", "Agencies", "Home Health", ""),
    ("261QF0400X", "Ambulatory Health Care Facilities", "Clinic/Center", "Federally Qualified Health Center (FQHC)"),
    ("282N00000X", "Hospitals", "General Acute Care Hospital", ""),
    ("291U00000X", "Laboratories", "Clinical Medical Laboratory", ""),
    ("332B00000X", "Suppliers", "Durable Medical Equipment & Medical Supplies", ""),
    ("3336C0003X", "Suppliers", "Pharmacy", "Community/Retail Pharmacy"),
)
INDIVIDUAL_TAXONOMIES = TAXONOMIES[:14]
ORGANISATION_TAXONOMIES = TAXONOMIES[14:]

FIRST_NAMES = ("MARY", "JAMES", "PATRICIA", "ROBERT", "JENNIFER", "MICHAEL", "LINDA", "DAVID", "ELIZABETH", "WILLIAM",
               "BARBARA", "JOSE", "SUSAN", "RICHARD", "JESSICA", "THOMAS", "SARAH", "CHARLES", "KAREN", "NGOC")
LAST_NAMES = ("SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER", "DAVIS", "RODRIGUEZ", "MARTINEZ",
              "HERNANDEZ", "LOPEZ", "GONZALEZ", "WILSON", "ANDERSON", "O'BRIEN", "NGUYEN", "KIM", "PATEL", "DE LA CRUZ")
ORG_WORDS = ("COMMUNITY", "VALLEY", "RIVERSIDE", "SUMMIT", "HARBOR", "PINE", "LAKESHORE", "MERCY", "UNITY", "NORTHSTAR")
ORG_KINDS = ("HEALTH CENTER", "MEDICAL GROUP, P.C.", "HOME CARE LLC", "CLINICAL LABORATORY INC", "HOSPITAL",
             "PHARMACY #12", "THERAPY SERVICES, LLC", "DENTAL ASSOCIATES")
CREDENTIALS = ("M.D.", "MD", "D.O.", "NP", "PA-C", "DDS", "PT, DPT", "PH.D.", "")
STREETS = ("MAIN ST", "OAK AVE", "2ND ST", "MAPLE DR", "PARK BLVD", "WASHINGTON AVE", "LAKE RD", "HILL ST")
PLACES = (  # city, state, zip5, area code
    ("BOSTON", "MA", "02115", "617"), ("NEW YORK", "NY", "10032", "212"), ("CHICAGO", "IL", "60612", "312"),
    ("HOUSTON", "TX", "77030", "713"), ("PHOENIX", "AZ", "85006", "602"), ("PHILADELPHIA", "PA", "19104", "215"),
    ("SAN ANTONIO", "TX", "78229", "210"), ("COLUMBUS", "OH", "43210", "614"), ("SEATTLE", "WA", "98104", "206"),
    ("DENVER", "CO", "80204", "303"), ("NASHVILLE", "TN", "37203", "615"), ("PORTLAND", "ME", "04101", "207"),
)


@dataclass(frozen=True)
class Address:
    line1: str
    line2: str
    city: str
    state: str
    postal_code: str  # 5 or 9 digits, leading zeros kept
    phone: str
    fax: str


@dataclass(frozen=True)
class Provider:
    index: int
    npi: str
    category: str  # see module docstring; "filler" for monthly-only providers outside the spending set
    entity_type: int  # 1 individual, 2 organisation
    first_name: str
    last_name: str
    middle_name: str
    credential: str
    sex: str
    organization_name: str
    enumeration_date: str  # MM/DD/YYYY as in NPPES
    last_update_date: str
    deactivation_date: str
    location: Address
    mailing: Address
    taxonomies: tuple[tuple[str, str, str, bool], ...]  # (code, license, license state, primary)
    identifiers: tuple[tuple[str, str, str, str], ...]  # (identifier, type code, state, issuer)
    other_names: tuple[tuple[str, str], ...] = field(default=())  # (name, type code)
    practice_locations: tuple[Address, ...] = field(default=())
    endpoints: tuple[tuple[str, str, str], ...] = field(default=())  # (type, endpoint, use code)
    authorized_official: tuple[str, str, str, str] = ("", "", "", "")  # last, first, title, phone

    @property
    def is_deactivated(self) -> bool:
        return bool(self.deactivation_date)


def category_of(seed: int, index: int, spending_npis: int) -> str:
    if index >= spending_npis:
        return "filler"
    u = stable_fraction(seed, "provider-category", index)
    threshold = 0.0
    for name, share in CATEGORY_SHARES:
        threshold += share
        if u < threshold:
            return name
    return "bulk"


def _date(r, start_year: int, end_year: int) -> str:
    return f"{r.randint(1, 12):02d}/{r.randint(1, 28):02d}/{r.randint(start_year, end_year)}"


def _address(r, place=None) -> Address:
    city, state, zip5, area = place or r.choice(PLACES)
    postal = zip5 + (f"{r.randint(0, 9999):04d}" if r.random() < 0.6 else "")
    return Address(
        line1=f"{r.randint(1, 9999)} {r.choice(STREETS)}",
        line2=f"SUITE {r.randint(100, 999)}" if r.random() < 0.3 else "",
        city=city,
        state=state,
        postal_code=postal,
        phone=f"{area}{r.randint(2000000, 9999999)}",
        fax=f"{area}{r.randint(2000000, 9999999)}" if r.random() < 0.5 else "",
    )


def provider(seed: int, index: int, spending_npis: int, *, version: int = 0) -> Provider:
    """Provider `index`; `version=1` is its weekly-file revision (new last update, changed address/name)."""
    r = rng(seed, "provider", index)
    category = category_of(seed, index, spending_npis)
    entity_type = 2 if r.random() < 0.25 else 1
    location = _address(r)
    mailing = location if r.random() < 0.7 else _address(r)
    enumeration_year_max = 2026 if category == "weekly_new" else 2025
    enumeration = _date(r, 2005 if category != "weekly_new" else 2026, enumeration_year_max)
    last_update = _date(r, 2019, 2025)
    pool = INDIVIDUAL_TAXONOMIES if entity_type == 1 else ORGANISATION_TAXONOMIES
    n_tax = 1 + (r.random() < 0.25) + (r.random() < 0.05)
    codes = r.sample(pool, n_tax)
    primary_slot = r.randrange(n_tax)  # the primary is not always slot 1
    taxonomies = tuple(
        (code[0], f"{r.choice('ABCDEFGHJK')}{r.randint(10000, 999999)}" if entity_type == 1 else "", location.state, i == primary_slot)
        for i, code in enumerate(codes)
    )
    identifiers = tuple(
        (f"{r.randint(100000, 99999999)}", "05", location.state, "MEDICAID") for _ in range(r.random() < 0.4)
    )
    if entity_type == 1:
        first, last = r.choice(FIRST_NAMES), r.choice(LAST_NAMES)
        middle = r.choice("ABCDEFGHJKLMNPRSTW") if r.random() < 0.5 else ""
        org = ""
        official = ("", "", "", "")
        sex = r.choice("MF")
        credential = r.choice(CREDENTIALS)
        other_names: tuple[tuple[str, str], ...] = ()
    else:
        first = last = middle = sex = credential = ""
        org = f"{r.choice(ORG_WORDS)} {r.choice(ORG_KINDS)}"
        official = (r.choice(LAST_NAMES), r.choice(FIRST_NAMES), r.choice(("CEO", "PRESIDENT", "ADMINISTRATOR")), location.phone)
        other_names = ((f"{r.choice(ORG_WORDS)} CARE", "3"),) if r.random() < 0.1 else ()
    practice_locations = (_address(r),) if r.random() < 0.15 else ()
    endpoints = ((("DIRECT", f"{(last or org.split()[0]).lower().replace(' ', '')}{index}@direct.example.org", "HIE"),)
                 if r.random() < 0.1 else ())
    deactivation = _date(r, 2023, 2025) if category == "deactivated" else ""

    if version:
        # The weekly revision: the provider moved and the record was updated after the monthly cut.
        w = rng(seed, "provider-weekly", index, version)
        location = _address(w)
        mailing = location
        last_update = f"11/{w.randint(1, 20):02d}/2026"
        if entity_type == 1 and w.random() < 0.5:
            last = w.choice(LAST_NAMES) + "-" + last
    return Provider(
        index=index,
        npi=make_npi(index, valid=category != "invalid"),
        category=category,
        entity_type=entity_type,
        first_name=first,
        last_name=last,
        middle_name=middle,
        credential=credential,
        sex=sex,
        organization_name=org,
        enumeration_date=enumeration,
        last_update_date=last_update,
        deactivation_date=deactivation,
        location=location,
        mailing=mailing,
        taxonomies=taxonomies,
        identifiers=identifiers,
        other_names=other_names,
        practice_locations=practice_locations,
        endpoints=endpoints,
        authorized_official=official,
    )


def _iso(mmddyyyy: str) -> str:
    """NPPES dates are MM/DD/YYYY; the API answers YYYY-MM-DD."""
    if not mmddyyyy:
        return ""
    m, d, y = mmddyyyy.split("/")
    return f"{y}-{m}-{d}"


def _api_address(a: Address, purpose: str | None) -> dict:
    out = {
        "country_code": "US",
        "country_name": "United States",
        "address_type": "DOM",
        "address_1": a.line1,
        "address_2": a.line2,
        "city": a.city,
        "state": a.state,
        "postal_code": a.postal_code,
        "telephone_number": f"{a.phone[:3]}-{a.phone[3:6]}-{a.phone[6:]}",
    }
    if purpose:
        out["address_purpose"] = purpose
    if a.fax:
        out["fax_number"] = f"{a.fax[:3]}-{a.fax[3:6]}-{a.fax[6:]}"
    return out


@lru_cache(maxsize=64)
def _taxonomy_desc(code: str) -> str:
    for c, _group, classification, specialization in TAXONOMIES:
        if c == code:
            return f"{classification}, {specialization}" if specialization else classification
    return ""


def api_result(p: Provider) -> dict:
    """The NPI Registry API v2.1 result object for a provider, in the real shape."""
    if p.entity_type == 1:
        basic = {
            "first_name": p.first_name,
            "last_name": p.last_name,
            "middle_name": p.middle_name,
            "credential": p.credential,
            "sole_proprietor": "NO",
            "sex": p.sex,
            "enumeration_date": _iso(p.enumeration_date),
            "last_updated": _iso(p.last_update_date),
            "status": "A",
        }
        basic = {k: v for k, v in basic.items() if v != ""}
    else:
        last, first, title, phone = p.authorized_official
        basic = {
            "organization_name": p.organization_name,
            "organizational_subpart": "NO",
            "enumeration_date": _iso(p.enumeration_date),
            "last_updated": _iso(p.last_update_date),
            "status": "A",
            "authorized_official_first_name": first,
            "authorized_official_last_name": last,
            "authorized_official_title_or_position": title,
            "authorized_official_telephone_number": f"{phone[:3]}-{phone[3:6]}-{phone[6:]}",
        }
    if p.is_deactivated:
        basic = {"status": "D", "deactivation_date": _iso(p.deactivation_date)}
    return {
        "created_epoch": str(1_104_537_600_000 + p.index * 86_400_000 % 600_000_000_000),
        "enumeration_type": f"NPI-{p.entity_type}",
        "last_updated_epoch": str(1_600_000_000_000 + p.index % 100_000_000),
        "number": p.npi,
        "addresses": [] if p.is_deactivated else [_api_address(p.location, "LOCATION"), _api_address(p.mailing, "MAILING")],
        "practiceLocations": [] if p.is_deactivated else [_api_address(a, None) for a in p.practice_locations],
        "basic": basic,
        "taxonomies": [] if p.is_deactivated else [
            {"code": code, "taxonomy_group": "", "desc": _taxonomy_desc(code), "state": state, "license": lic or None,
             "primary": primary}
            for code, lic, state, primary in p.taxonomies
        ],
        "identifiers": [] if p.is_deactivated else [
            {"code": code, "desc": "MEDICAID" if code == "05" else "Other", "issuer": issuer, "identifier": ident, "state": state}
            for ident, code, state, issuer in p.identifiers
        ],
        "endpoints": [] if p.is_deactivated else [
            {"endpointType": t, "endpointTypeDescription": "Direct Messaging Address", "endpoint": e, "affiliation": "N",
             "useCode": use, "useDescription": "Health Information Exchange (HIE)", "contentType": "OTHER",
             "contentTypeDescription": "Other", "address_type": "DOM", "country_code": "US", "country_name": "United States"}
            for t, e, use in p.endpoints
        ],
        "other_names": [] if p.is_deactivated else [
            {"organization_name": name, "code": code, "type": "Other Name"} for name, code in p.other_names
        ],
    }


def filler_indexes(spending_npis: int, nppes_rows: int) -> range:
    return range(spending_npis, max(spending_npis, nppes_rows))


# make_npi's affine map x = (index * 48_271 + 12_345_679) mod 2e8 is a bijection (48_271 is prime to 2e8),
# so an NPI leads back to its provider index: the API server answers for any scale without a lookup file.
_NPI_SPACE = 200_000_000
_MULTIPLIER_INVERSE = pow(48_271, -1, _NPI_SPACE)


def index_of_npi(npi: str) -> int | None:
    """The provider index whose NPI is `npi` (valid or planted-invalid), or None if no index maps to it."""
    if len(npi) != 10 or not npi.isdigit():
        return None
    x = int(npi[:9]) - 100_000_000
    if not 0 <= x < _NPI_SPACE:
        return None
    index = ((x - 12_345_679) * _MULTIPLIER_INVERSE) % _NPI_SPACE
    return index


def api_provider(seed: int, npi: str, spending_npis: int, nppes_rows: int) -> Provider | None:
    """What the NPI Registry API knows about `npi`: the provider (its latest revision) or None.

    The API knows every spending provider in API_KNOWS and every monthly filler provider; it never
    knows planted-invalid NPIs or the `nowhere` ones.
    """
    index = index_of_npi(npi)
    if index is None or index >= max(spending_npis, nppes_rows):
        return None
    category = category_of(seed, index, spending_npis)
    if category != "filler" and category not in API_KNOWS:
        return None
    p = provider(seed, index, spending_npis, version=1 if category == "weekly_update" else 0)
    return p if p.npi == npi else None
