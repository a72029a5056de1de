"""Referral likelihood of Hop Teaming edges: the seed's examples (primary care -> cardiology likely,
primary care -> emergency not, anything -> lab low), each adjustment moving the score the way the rules
file says, the file's checks, and the SQL fragment giving exactly what the Python reference gives, row
by row, on the real test PostgreSQL."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

import pytest
import yaml
from psycopg import sql

from include.common.errors import InvalidIdentifier
from include.db.postgres import copy_rows
from include.hop_teaming.referral import (
    DEFAULT_RULES,
    WAITS,
    evaluate_edge,
    load_rules,
    role_of,
    score_edge,
    score_sql,
)
from include.sandbox.providers import TAXONOMIES

RULES = load_rules()
NUCC = {code: (grouping, classification, specialization) for code, grouping, classification, specialization in TAXONOMIES}
PHYSICIANS = "Allopathic & Osteopathic Physicians"
FAMILY = NUCC["207Q00000X"]
CARDIOLOGY = NUCC["207RC0000X"]
EMERGENCY = NUCC["207P00000X"]
LAB = NUCC["291U00000X"]
UNKNOWN = (None, None, None)
ASTROLOGER = ("Other Service Providers", "Astrologer", None)
PRIMARY_CARE = [NUCC[c] for c in ("207Q00000X", "207R00000X", "208D00000X", "363L00000X", "363A00000X", "261QF0400X")]

# Signals of an edge: NEUTRAL triggers no adjustment (wait 60 d, std/mean 0.75, 2 visits per patient,
# reverse/forward 0.5); BEST triggers every raising one, WORST every lowering one.
NEUTRAL = {"patient_count": 20, "transaction_count": 40, "average_day_wait": Decimal(60),
           "std_day_wait": Decimal(45), "reverse_patient_count": 10}
BEST = {"patient_count": 40, "transaction_count": 41, "average_day_wait": Decimal(7),
        "std_day_wait": Decimal(2), "reverse_patient_count": None}
WORST = {"patient_count": 20, "transaction_count": 100, "average_day_wait": Decimal(150),
         "std_day_wait": Decimal(200), "reverse_patient_count": 30}
NO_SIGNALS = dict.fromkeys(NEUTRAL)


def edge(from_taxonomy, to_taxonomy, signals=NEUTRAL, **changes) -> dict:
    e = {}
    for side, (grouping, classification, specialization) in (("from", from_taxonomy), ("to", to_taxonomy)):
        e |= {f"{side}_grouping": grouping, f"{side}_classification": classification,
              f"{side}_specialization": specialization}
    return e | signals | changes


def weight(name: str) -> float:
    return float(next(a.weight for a in RULES.adjustments if a.name == name))


# ----------------------------------------------------------------------------------- roles and rules

EXPECTED_ROLES = {
    "207Q00000X": "primary_care", "207R00000X": "primary_care", "207RC0000X": "specialist",
    "207QB0505X": "specialist", "208D00000X": "primary_care", "207P00000X": "emergency",
    "208M00000X": "hospital", "208600000X": "specialist", "2084P0800X": "specialist",
    "363L00000X": "primary_care", "363A00000X": "primary_care", "103T00000X": "behavioral_health",
    "122300000X": "dental", "225100000X": "therapy", "251E00000X": "post_acute", "261QF0400X": "primary_care",
    "282N00000X": "hospital", "291U00000X": "ancillary", "332B00000X": "ancillary", "3336C0003X": "ancillary",
}


def test_every_sandbox_taxonomy_gets_its_role_by_name():
    assert set(EXPECTED_ROLES) == set(NUCC)
    got = {code: role_of(edge(taxonomy, UNKNOWN), "from") for code, taxonomy in NUCC.items()}
    assert got == EXPECTED_ROLES
    # 207QB0505X looks like Family Medicine (207Q) but is Internal Medicine with a specialization.
    assert got["207QB0505X"] == "specialist"


def test_names_match_ignoring_case_and_specialization_may_be_null_or_empty():
    for taxonomy in [(PHYSICIANS.upper(), "family medicine", None), (PHYSICIANS, "Internal Medicine", None),
                     (PHYSICIANS, "INTERNAL MEDICINE", "")]:
        assert role_of(edge(taxonomy, UNKNOWN), "from") == "primary_care"
    assert role_of(edge(UNKNOWN, (PHYSICIANS, "Internal Medicine", "CARDIOVASCULAR DISEASE")), "to") == "specialist"


def test_primary_care_to_cardiology_is_likely_a_referral():
    for pcp in PRIMARY_CARE:
        for signals in (NEUTRAL, NO_SIGNALS, BEST):
            score, rule = score_edge(edge(pcp, CARDIOLOGY, signals))
            assert score >= 0.6, (pcp, signals, score, rule)
            assert score >= RULES.likely_referral_at_least
            assert rule.startswith("primary_care->specialist")
    assert score_edge(edge(FAMILY, CARDIOLOGY, BEST)) == (
        1.0, "primary_care->specialist; +short_wait; +consistent_wait; +one_visit_per_patient; +one_way")


def test_primary_care_to_emergency_is_unlikely_whatever_the_signals():
    for pcp in PRIMARY_CARE:
        for signals in (NEUTRAL, NO_SIGNALS, BEST, WORST):
            score, rule = score_edge(edge(pcp, EMERGENCY, signals))
            assert score <= 0.3 and rule == "any->emergency"


def test_anything_to_a_lab_scores_low():
    for taxonomy in [*NUCC.values(), UNKNOWN, ASTROLOGER]:
        result = evaluate_edge(edge(taxonomy, LAB, BEST))
        assert result.score <= 0.2 and result.rule == "any->ancillary" and result.to_role == "ancillary"


def test_unknown_taxonomy_falls_back():
    for from_taxonomy, to_taxonomy in [(UNKNOWN, UNKNOWN), (ASTROLOGER, CARDIOLOGY), (FAMILY, ASTROLOGER),
                                       ((None, "Family Medicine ", None), UNKNOWN)]:  # trailing space: not a name
        result = evaluate_edge(edge(from_taxonomy, to_taxonomy))
        assert result.rule == "fallback" and result.score == float(RULES.fallback.score)
        assert "other" in (result.from_role, result.to_role)


# ----------------------------------------------------------------------------------------- adjustments

@pytest.mark.parametrize(("changes", "name"), [
    ({"average_day_wait": Decimal(14), "std_day_wait": Decimal(10)}, "short_wait"),
    ({"average_day_wait": Decimal(120), "std_day_wait": Decimal(90)}, "long_wait"),
    ({"std_day_wait": Decimal(20)}, "consistent_wait"),
    ({"std_day_wait": Decimal(90)}, "erratic_wait"),
    ({"transaction_count": 22}, "one_visit_per_patient"),
    ({"transaction_count": 80}, "many_visits_per_patient"),
    ({"reverse_patient_count": 2}, "one_way"),
    ({"reverse_patient_count": 19}, "two_way"),
])
def test_each_adjustment_moves_the_score_its_documented_way(changes, name):
    base, base_rule = score_edge(edge(FAMILY, CARDIOLOGY))
    assert base_rule == "primary_care->specialist"
    score, rule = score_edge(edge(FAMILY, CARDIOLOGY, **changes))
    raises = name in ("short_wait", "consistent_wait", "one_visit_per_patient", "one_way")
    assert (weight(name) > 0) == raises
    assert rule == f"primary_care->specialist; {'+' if raises else '-'}{name}"
    assert score == pytest.approx(base + weight(name))


def test_bounds_are_inclusive_and_exact_on_decimals():
    # std/mean exactly 0.5 (6.15 / 12.3 is 0.49999999999999994 in binary floating point)
    assert "+consistent_wait" in score_edge(edge(FAMILY, CARDIOLOGY, average_day_wait=Decimal("12.3"),
                                                 std_day_wait=Decimal("6.15")))[1]
    assert "+consistent_wait" not in score_edge(edge(FAMILY, CARDIOLOGY, average_day_wait=Decimal("12.3"),
                                                     std_day_wait=Decimal("6.1500001")))[1]
    assert "+short_wait" in score_edge(edge(FAMILY, CARDIOLOGY, average_day_wait=30))[1]
    assert "+short_wait" not in score_edge(edge(FAMILY, CARDIOLOGY, average_day_wait=30.01))[1]
    assert "+one_visit_per_patient" in score_edge(edge(FAMILY, CARDIOLOGY, patient_count=10, transaction_count=12))[1]


def test_a_missing_reverse_edge_had_fewer_than_eleven_patients():
    # One way only if even 10 reverse patients are at most a quarter of the forward ones.
    assert "+one_way" in score_edge(edge(FAMILY, CARDIOLOGY, patient_count=40, reverse_patient_count=None))[1]
    assert "one_way" not in score_edge(edge(FAMILY, CARDIOLOGY, patient_count=39, reverse_patient_count=None))[1]
    # Never two way: the reverse edge may have had no patient at all.
    assert "two_way" not in score_edge(edge(FAMILY, CARDIOLOGY, patient_count=11, reverse_patient_count=None))[1]


def test_signals_that_cannot_be_computed_adjust_nothing():
    assert score_edge(edge(ASTROLOGER, ASTROLOGER, NO_SIGNALS)) == (0.4, "fallback")
    # No patients: no ratio (visits per patient, reverse/forward), whatever the other counts.
    assert score_edge(edge(ASTROLOGER, ASTROLOGER, patient_count=0, transaction_count=0,
                           reverse_patient_count=None)) == (0.4, "fallback")
    # A mean wait of 0 is short, but std/mean cannot be computed: neither consistent nor erratic.
    assert score_edge(edge(ASTROLOGER, ASTROLOGER, average_day_wait=Decimal(0), std_day_wait=Decimal(5))) == (
        0.5, "fallback; +short_wait")


def test_scores_stay_in_zero_one(tmp_path):
    def rules_with_weights(w):
        doc = yaml.safe_load(DEFAULT_RULES.read_text())
        doc["pair_rules"] = [{"from": "any", "to": "any", "score": 0.5}]
        for a in doc["adjustments"]:
            a["weight"] = w
        path = tmp_path / f"rules_{w}.yaml"
        path.write_text(yaml.safe_dump(doc))
        return load_rules(path)

    assert score_edge(edge(FAMILY, CARDIOLOGY, BEST), rules_with_weights(1)) == (
        1.0, "any->any; +short_wait; +consistent_wait; +one_visit_per_patient; +one_way")
    assert score_edge(edge(FAMILY, CARDIOLOGY, WORST), rules_with_weights(-1))[0] == 0.0
    for e in generated_edges(random.Random(3)):
        assert 0.0 <= score_edge(e)[0] <= 1.0


# ------------------------------------------------------------------------------------ the rules file

def default_document() -> dict:
    return yaml.safe_load(DEFAULT_RULES.read_text())


def _set(path, value):
    def change(doc):
        *parents, last = path
        target = doc
        for key in parents:
            target = target[key]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return change


_DELETE = object()
PRIMARY_TO_SPECIALIST = 8  # index of primary_care -> specialist in pair_rules

BAD_DOCUMENTS = {
    "unknown top key": (_set(["weights"], {}), "weights: unknown key"),
    "unknown pair rule key": (_set(["pair_rules", 0, "scor"], 0.5), "pair_rules[0].scor: unknown key"),
    "unknown match key": (_set(["roles", 0, "match", 0, "taxonomy"], "207P00000X"), "roles[0].match[0].taxonomy: unknown key"),
    "score above 1": (_set(["pair_rules", PRIMARY_TO_SPECIALIST, "score"], 1.5),
                      f"pair_rules[{PRIMARY_TO_SPECIALIST}].score: 1.5 is outside [0, 1]"),
    "negative fallback": (_set(["fallback", "score"], -0.1), "fallback.score: -0.1 is outside [0, 1]"),
    "score as text": (_set(["fallback", "score"], "0.4"), "fallback.score: must be a number"),
    "weight as text": (_set(["adjustments", 0, "weight"], "high"), "adjustments[0].weight: must be a number, got 'high'"),
    "weight as boolean": (_set(["adjustments", 0, "weight"], True), "adjustments[0].weight: must be a number"),
    "zero weight": (_set(["adjustments", 0, "weight"], 0), "adjustments[0].weight: 0 changes nothing"),
    "threshold as text": (_set(["adjustments", 0, "at_most"], "30 days"), "adjustments[0].at_most: must be a number"),
    "unknown role": (_set(["pair_rules", PRIMARY_TO_SPECIALIST, "to"], "cardiology"),
                     f"pair_rules[{PRIMARY_TO_SPECIALIST}].to: unknown role 'cardiology'"),
    "unknown role in a list": (_set(["pair_rules", 0, "from"], ["primary_care", "pcp"]),
                               "pair_rules[0].from: unknown role 'pcp'"),
    "missing score": (_set(["pair_rules", 0, "score"], _DELETE), "pair_rules[0]: missing key 'score'"),
    "missing section": (_set(["adjustments"], _DELETE), "missing key 'adjustments'"),
    "unknown signal": (_set(["adjustments", 0, "signal"], "wait"), "adjustments[0].signal: unknown signal 'wait'"),
    "no bound": (_set(["adjustments", 0, "at_most"], _DELETE), "adjustments[0]: needs at_most and/or at_least"),
    "empty range": (_set(["adjustments", 0, "at_least"], 60), "adjustments[0]: at_least 60 is above at_most 30"),
    "reserved role": (_set(["roles", 0, "name"], "other"), "roles[0].name: 'other' is reserved"),
    "role twice": (_set(["roles", 1, "name"], "emergency"), "roles[1].name: role 'emergency' is defined twice"),
    "adjustment twice": (_set(["adjustments", 1, "name"], "short_wait"), "adjustments[1].name: 'short_wait' is already used"),
    "rule name twice": (_set(["pair_rules", 1, "name"], "any->ancillary"), "pair_rules[1]: rule name 'any->ancillary'"),
    "name not text": (_set(["roles", 0, "match", 0, "classification"], [42]),
                      "roles[0].match[0].classification[0]: must be a NUCC name"),
    "empty match": (_set(["roles", 0, "match", 0], {}), "roles[0].match[0]: needs at least one of"),
    "no roles": (_set(["roles"], []), "roles: must not be empty"),
    "adjust not boolean": (_set(["pair_rules", 0, "adjust"], "no way"), "pair_rules[0].adjust: must be true or false"),
    "decimals": (_set(["score_decimals"], 2.5), "score_decimals: must be a whole number"),
}


@pytest.mark.parametrize("case", BAD_DOCUMENTS, ids=list(BAD_DOCUMENTS))
def test_bad_rules_files_fail_naming_file_and_key(tmp_path, case):
    change, message = BAD_DOCUMENTS[case]
    doc = default_document()
    change(doc)
    path = tmp_path / "referral_rules.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ValueError) as err:
        load_rules(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


@pytest.mark.parametrize(("text", "message"), [
    ("score_decimals: 3\nscore_decimals: 2\n", "key 'score_decimals' is given twice"),
    ("roles: [unclosed\n", "not valid YAML"),
    ("- just\n- a list\n", "must be a mapping"),
    ("", "must be a mapping, got None"),
])
def test_unreadable_rules_files_fail_naming_the_file(tmp_path, text, message):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        load_rules(path)
    assert str(path) in str(err.value)


def test_a_missing_rules_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="cannot read the rules file") as err:
        load_rules(tmp_path / "missing.yaml")
    assert str(tmp_path / "missing.yaml") in str(err.value)


def test_the_default_file_keeps_rules_and_roles_it_documents():
    assert RULES.role_names[-1] == "other"
    names = [r.name for r in RULES.pair_rules]
    assert names[PRIMARY_TO_SPECIALIST] == "primary_care->specialist"
    assert names.index("any->ancillary") < names.index("primary_care->specialist")
    assert {a.name: (a.at_most, a.at_least) for a in RULES.adjustments}["short_wait"] == (Decimal(30), None)


# ---------------------------------------------------------------------------------- SQL == Python

EXTRA_TAXONOMIES = [
    (PHYSICIANS, "Radiology", "Diagnostic Radiology"), (PHYSICIANS, "Anesthesiology", ""),
    ("Nursing Service Providers", "Nurse Anesthetist, Certified Registered", None),
    ("Hospital Units", "Psychiatric Unit", None), ("Nursing & Custodial Care Facilities", "Skilled Nursing Facility", ""),
    ("Podiatric Medicine & Surgery Service Providers", "Podiatrist", ""), ("Transportation Services", "Ambulance", None),
    (PHYSICIANS.lower(), "FAMILY MEDICINE", None), (PHYSICIANS, "Internal Medicine", None),
    (PHYSICIANS, "Internal Medicine", " "),  # a blank (untrimmed) specialization is a specialization in both
    (PHYSICIANS, "FAMILY MEDİCINE", None),  # dotted capital I: not ASCII, so not lower-cased by either side
    (PHYSICIANS, "Family Medicine ", None),  # untrimmed: no match on either side
    ("Ambulatory Health Care Facilities", "Clinic/Center", "Radiology"), ASTROLOGER, UNKNOWN,
    ("Other Service Providers", "Astrologer", "Natal Charts"),
]
PROFILES = [*NUCC.values(), *EXTRA_TAXONOMIES]

# Numbers on and around every bound, NULLs, zeros, and values a float would get wrong.
SCENARIOS = [
    NEUTRAL, BEST, WORST, NO_SIGNALS,
    {"patient_count": 0, "transaction_count": 0, "average_day_wait": Decimal(0), "std_day_wait": Decimal(0),
     "reverse_patient_count": 5},
    {"patient_count": None, "transaction_count": 30, "average_day_wait": None, "std_day_wait": Decimal(3),
     "reverse_patient_count": 4},
    {"patient_count": 10, "transaction_count": 12, "average_day_wait": Decimal(30), "std_day_wait": Decimal(15),
     "reverse_patient_count": 8},
    {"patient_count": 11, "transaction_count": 33, "average_day_wait": Decimal(90), "std_day_wait": Decimal(90),
     "reverse_patient_count": None},
    {"patient_count": 40, "transaction_count": 48, "average_day_wait": Decimal("12.3"),
     "std_day_wait": Decimal("6.15"), "reverse_patient_count": None},
    {"patient_count": 39, "transaction_count": 117, "average_day_wait": Decimal("30.000000000000000001"),
     "std_day_wait": Decimal("15.0000000000000000005"), "reverse_patient_count": None},
    {"patient_count": 40, "transaction_count": 47, "average_day_wait": Decimal("89.99"),
     "std_day_wait": Decimal("89.99"), "reverse_patient_count": 10},
    {"patient_count": 20, "transaction_count": 60, "average_day_wait": Decimal("0.01"),
     "std_day_wait": Decimal("0.011"), "reverse_patient_count": 60},
    {"patient_count": 1, "transaction_count": 1, "average_day_wait": Decimal(5), "std_day_wait": Decimal(1),
     "reverse_patient_count": None},  # below the privacy threshold: the reverse edge may have had 0 patients
    {"patient_count": 2_000_000_000, "transaction_count": 2_147_483_647, "average_day_wait": Decimal("364.5"),
     "std_day_wait": Decimal("0.5"), "reverse_patient_count": 2_000_000_000},
]
COLUMNS = ["id", "year", "from_npi", "to_npi", "patient_count", "transaction_count", "average_day_wait",
           "std_day_wait", "from_entity_type", "to_entity_type", "from_taxonomy", "to_taxonomy", "from_grouping",
           "to_grouping", "from_classification", "to_classification", "from_specialization", "to_specialization",
           "reverse_patient_count", "reverse_transaction_count"]
TYPES = {"id": "integer", "year": "integer", "patient_count": "integer", "transaction_count": "integer",
         "average_day_wait": "numeric", "std_day_wait": "numeric", "reverse_patient_count": "integer",
         "reverse_transaction_count": "integer"}


def random_signals(rng: random.Random) -> dict:
    patients = rng.choice([None, 0, 11, 12, 20, 39, 40, 100, 5000])
    return {
        "patient_count": patients,
        "transaction_count": None if rng.random() < 0.05 else (patients or 11) * rng.choice([1, 1, 2, 3, 5]) + rng.randint(0, 4),
        "average_day_wait": None if rng.random() < 0.1 else Decimal(rng.randint(0, 20000)) / 100,
        "std_day_wait": None if rng.random() < 0.1 else Decimal(rng.randint(0, 30000)) / 100,
        "reverse_patient_count": None if rng.random() < 0.3 else rng.randint(11, 200),
    }


def generated_edges(rng: random.Random) -> list[dict]:
    """Every ordered pair of taxonomy profiles (~1200 edges), each with one scenario or random signals."""
    edges = []
    for n, (f, t) in enumerate(itertools.product(PROFILES, PROFILES)):
        signals = SCENARIOS[n % len(SCENARIOS)] if n % 3 else random_signals(rng)
        edges.append(edge(f, t, signals) | {
            "id": n, "year": 2022, "from_npi": f"{n:010d}", "to_npi": f"{n + 1:010d}",
            "from_entity_type": rng.choice(["1", "2", None]), "to_entity_type": rng.choice(["1", "2", None]),
            "from_taxonomy": None, "to_taxonomy": None, "reverse_transaction_count": None})
    return edges


def exotic_rules(tmp_path):
    """The default rules bent to exercise what they do not use: ranges, 2 decimals with halves to round,
    a named rule over role lists, a specialization-only match, a fallback that does not adjust, and
    names with quotes (literals, never SQL)."""
    doc = default_document()
    doc["score_decimals"] = 2
    doc["fallback"] = {"score": 0.455, "adjust": False}
    doc["roles"].insert(0, {"name": "cardiology", "match": [{"specialization": ["Cardiovascular Disease"]},
                                                            {"classification": ["Women's Health'); DROP TABLE x; --"]}]})
    doc["roles"].append({"name": "specialised", "match": [{"has_specialization": True}]})
    doc["pair_rules"].insert(0, {"name": "to the heart (named)", "from": ["primary_care", "other"],
                                 "to": "cardiology", "score": 0.9})
    doc["pair_rules"].append({"from": "specialised", "to": ["specialised", "cardiology"], "score": 0.335})
    doc["adjustments"] += [
        {"name": "medium_wait", "signal": "average_day_wait", "at_least": 30, "at_most": 60, "weight": 0.005},
        {"name": "some_reverse", "signal": "reverse_patient_ratio", "at_least": 0.2, "at_most": 0.5, "weight": -0.0149},
        {"name": "few_visits", "signal": "visits_per_patient", "at_least": 1, "at_most": 2, "weight": 0.001},
        {"name": "tight_wait", "signal": "wait_cv", "at_most": 0.3, "weight": 0.002},
    ]
    path = tmp_path / "exotic.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_rules(path)


def as_floats(e: dict, rng: random.Random) -> dict:
    """The edge with double precision waits, some with 16-17 significant digits (a computed mean)."""
    waits = {k: None if e[k] is None else float(e[k]) * rng.choice([1, 1, 1 / 3, 2 / 3]) for k in WAITS}
    return e | waits


# Doubles where float arithmetic and the decimal of the value disagree: 0.057 <= 0.3 * 0.19 is false in
# binary floating point; 30.000000000000004 (the double after 30) is 30 as float8::numeric.
# NaN and infinities (a double precision column takes them) count as NULL on both sides.
FLOAT_TRAPS = [{"average_day_wait": 0.19, "std_day_wait": 0.057}, {"average_day_wait": 30.000000000000004},
               {"average_day_wait": float("nan"), "std_day_wait": float("inf")},
               {"average_day_wait": float("-inf"), "std_day_wait": float("nan")}]


@pytest.mark.parametrize("which", ["default", "exotic"])
def test_sql_gives_exactly_what_python_gives(pg, scratch_schema, tmp_path, which):
    """default: the rules file, numeric waits. exotic: bent rules (see exotic_rules), double precision
    waits, bigint counts, another alias."""
    rules = RULES if which == "default" else exotic_rules(tmp_path)
    edges = generated_edges(random.Random(1))
    types = dict(TYPES)
    if which == "exotic":
        rng = random.Random(2)
        edges = [as_floats(e, rng) for e in edges]
        edges += [edge(FAMILY, CARDIOLOGY, **trap) | {"id": len(edges) + i} for i, trap in enumerate(FLOAT_TRAPS)]
        edges.append(edge((None, "Women's Health'); DROP TABLE x; --", None), UNKNOWN) | {"id": len(edges)})
        types |= dict.fromkeys(WAITS, "double precision") | dict.fromkeys(
            ["patient_count", "transaction_count", "reverse_patient_count"], "bigint")
    table = sql.Identifier(scratch_schema, "edges")
    pg.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(types.get(c, "text"))) for c in COLUMNS)))
    copy_rows(pg, (scratch_schema, "edges"), COLUMNS, ([e.get(c) for c in COLUMNS] for e in edges))

    alias = "e" if which == "default" else "edge"
    rows = pg.execute(sql.SQL("SELECT {alias}.id, {fragment} FROM {table} {alias} ORDER BY {alias}.id").format(
        alias=sql.Identifier(alias), fragment=score_sql(rules, alias=alias), table=table)).fetchall()
    assert len(rows) == len(edges)
    mismatches = []
    for e, (row_id, score, rule, from_role, to_role) in zip(edges, rows, strict=True):
        assert row_id == e["id"]
        got = (float(score), rule, from_role, to_role)
        want = tuple(evaluate_edge(e, rules))
        if got != want:
            mismatches.append((e, got, want))
    assert not mismatches, f"{len(mismatches)} rows differ, e.g. {mismatches[:3]}"

    # The edges cover every rule that can decide, every adjustment both ways, and every role.
    decided = {r.split("; ")[0] for _, _, r, _, _ in rows}
    reachable = {rules.pair_rule(f, t).name for f in rules.role_names for t in rules.role_names}
    assert decided == reachable
    tags = {t for _, _, r, _, _ in rows for t in r.split("; ")[1:]}
    assert tags == {a.tag for a in rules.adjustments}
    assert {f for *_, f, _ in rows} == set(rules.role_names)
    if which == "exotic":
        assert rows[-1][3] == "cardiology"  # the name with quotes matched as a literal
        assert {float(s) for _, s, r, _, _ in rows if r == "fallback"} == {0.46}  # 0.455 rounds half up


def test_score_sql_takes_only_a_plain_alias():
    with pytest.raises(InvalidIdentifier):
        score_sql(RULES, alias='e"; DROP TABLE x; --')
    text = score_sql(RULES, alias="edges").as_string(None)
    assert text.endswith("AS to_role") and '"edges"."from_classification"' in text and '"e".' not in text
