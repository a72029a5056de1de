"""How likely a DocGraph Hop Teaming edge A -> B is a referral, from the rules in `referral_rules.yaml`.

Hop Teaming counts shared patients, not referrals; CareSet only suggests signals (the provider types of
the pair, short and consistent day waits, about one visit per patient). The rules file turns them into
a score in [0, 1] and a reason anyone can read, e.g.
`(0.95, "primary_care->specialist; +short_wait; +one_visit_per_patient")`.

The same rules in two implementations, kept equal by tests/include/hop_teaming/test_referral.py:

    score_edge(edge)           Python, the reference. `edge` maps the columns of hop.edges_enriched
                               (from_classification, patient_count, reverse_patient_count, ...).
    score_sql(rules, "e")      a SELECT-list fragment for PostgreSQL over a relation aliased `e`:
                               SELECT e.*, {fragment} FROM hop.edges_enriched e
                               -> referral_score numeric, referral_rule text, from_role text, to_role text

Both compute in decimal and compare ratios without dividing (`std <= 0.5 * mean`), so a value exactly
on a threshold falls the same way in both. The SQL casts the counts and waits to numeric, so they may
be integer, numeric or double precision; Python takes a float as its 15-significant-digit decimal,
which is what PostgreSQL's float8::numeric gives. Names from the file reach SQL only as `sql.Literal`s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import yaml
from psycopg import sql

from include.common.errors import ConfigurationError
from include.db.postgres import validate_identifier

DEFAULT_RULES = Path(__file__).with_name("referral_rules.yaml")
ANY = "any"  # in a pair rule: every role
OTHER = "other"  # the role of an end whose taxonomy no role matches, or that has none
FALLBACK = "fallback"  # the rule name when no pair rule fits
TAXONOMY_LEVELS = ("grouping", "classification", "specialization")

# signal -> (numerator column, denominator column or None). A bound is checked as
# `numerator <= bound * denominator` with a positive denominator: no division, so no rounding.
SIGNALS: dict[str, tuple[str, str | None]] = {
    "average_day_wait": ("average_day_wait", None),
    "wait_cv": ("std_day_wait", "average_day_wait"),
    "visits_per_patient": ("transaction_count", "patient_count"),
    "reverse_patient_ratio": ("reverse_patient_count", "patient_count"),
}
# NULL in this column is not "unknown" but "below the privacy threshold": 0 .. threshold - 1 patients.
CENSORED = "reverse_patient_count"
# The waits may be double precision, which takes NaN and infinities: both sides read those as NULL.
# (The counts are integers; guarding them too would cost for nothing.)
WAITS = ("average_day_wait", "std_day_wait")

_NAME = re.compile(r"[a-z][a-z0-9_]*")
# Names are compared ignoring ASCII case only, as PostgreSQL's lower() does under COLLATE "C" whatever
# the database's locale: the two implementations then agree on every text (NUCC names are ASCII).
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ZERO, _ONE = Decimal(0), Decimal(1)


class RulesError(ConfigurationError, ValueError):
    """The rules file cannot be read or is wrong; the message names the file and the key."""


# ------------------------------------------------------------------------------------------ the rules

@dataclass(frozen=True)
class Matcher:
    """One `match` entry of a role: every level given must list the taxonomy's name (kept lower-cased)."""

    grouping: tuple[str, ...] | None = None
    classification: tuple[str, ...] | None = None
    specialization: tuple[str, ...] | None = None
    has_specialization: bool | None = None


@dataclass(frozen=True)
class Role:
    name: str
    matchers: tuple[Matcher, ...]


@dataclass(frozen=True)
class PairRule:
    name: str
    from_roles: tuple[str, ...] | None  # None: any role
    to_roles: tuple[str, ...] | None
    score: Decimal
    adjust: bool  # whether the adjustments apply to edges this rule decides

    def fits(self, from_role: str, to_role: str) -> bool:
        return ((self.from_roles is None or from_role in self.from_roles)
                and (self.to_roles is None or to_role in self.to_roles))


@dataclass(frozen=True)
class Adjustment:
    name: str
    signal: str  # a key of SIGNALS
    at_most: Decimal | None
    at_least: Decimal | None
    weight: Decimal  # never 0

    @property
    def tag(self) -> str:
        """How the rule text names it: `+short_wait`, `-long_wait`."""
        return f"{'+' if self.weight > 0 else '-'}{self.name}"


@dataclass(frozen=True)
class Rules:
    path: Path
    score_decimals: int
    likely_referral_at_least: Decimal
    reverse_edge_privacy_threshold: int
    roles: tuple[Role, ...]
    pair_rules: tuple[PairRule, ...]
    fallback: PairRule
    adjustments: tuple[Adjustment, ...]

    @property
    def role_names(self) -> tuple[str, ...]:
        """Every role an end can get, in matching order, `other` last."""
        return (*(r.name for r in self.roles), OTHER)

    def pair_rule(self, from_role: str, to_role: str) -> PairRule:
        """The first pair rule that fits, else the fallback."""
        return next((r for r in self.pair_rules if r.fits(from_role, to_role)), self.fallback)


# ---------------------------------------------------------------------------------------- loading

class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (plain YAML silently keeps the last)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_rules(path: str | Path = DEFAULT_RULES) -> Rules:
    """Read and check a rules file; any mistake raises `RulesError` (a ValueError) naming file and key."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            doc = yaml.load(f, Loader=_StrictLoader)  # a SafeLoader: builds plain data only
    except OSError as exc:
        raise RulesError(f"cannot read the rules file: {exc.strerror or exc}", source=str(path)) from exc
    except yaml.YAMLError as exc:
        raise RulesError(f"not valid YAML: {exc}", source=str(path)) from exc
    return _Parser(path).rules(doc)


@lru_cache(maxsize=1)
def default_rules() -> Rules:
    """The rules of include/hop_teaming/referral_rules.yaml, read once per process."""
    return load_rules(DEFAULT_RULES)


def _at(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


class _Parser:
    """Turns the YAML document into `Rules`, failing with the key path (`pair_rules[3].score`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> NoReturn:
        raise RulesError(f"{where}: {message}" if where else message, source=str(self.path))

    def mapping(self, value: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(where, f"must be a mapping, got {value!r}")
        for key in value:
            if key not in required and key not in optional:
                self.fail(_at(where, str(key)), f"unknown key; expected one of: {', '.join((*required, *optional))}")
        for key in required:
            if key not in value:
                self.fail(where, f"missing key {key!r}")
        return value

    def sequence(self, value: Any, where: str, *, allow_empty: bool = True) -> list:
        if not isinstance(value, list):
            self.fail(where, f"must be a list, got {value!r}")
        if not value and not allow_empty:
            self.fail(where, "must not be empty")
        return value

    def number(self, value: Any, where: str, low: Decimal | None = None, high: Decimal | None = None) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(where, f"must be a number, got {value!r}")
        number = Decimal(str(value))  # the decimal the file shows: 0.1, not 0.1000000000000000055...
        if not number.is_finite():
            self.fail(where, f"must be a finite number, got {value!r}")
        if (low is not None and number < low) or (high is not None and number > high):
            self.fail(where, f"{value} is outside [{'' if low is None else low}, {'' if high is None else high}]")
        return number

    def integer(self, value: Any, where: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(where, f"must be a whole number from {low} to {high}, got {value!r}")
        return value

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"must be true or false, got {value!r}")
        return value

    def name(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            self.fail(where, f"must be a lower-case name (letters, digits, _), got {value!r}")
        return value

    def taxonomy_names(self, value: Any, where: str) -> tuple[str, ...]:
        single = isinstance(value, str)
        items = [value] if single else self.sequence(value, where, allow_empty=False)
        names: list[str] = []
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item.strip():
                self.fail(where if single else _at(where, i), f"must be a NUCC name, got {item!r}")
            name = item.strip().translate(_ASCII_LOWER)
            if name not in names:
                names.append(name)
        return tuple(names)

    # ------------------------------------------------------------------------------ the sections

    def rules(self, doc: Any) -> Rules:
        top = self.mapping(doc, "", ("score_decimals", "likely_referral_at_least", "reverse_edge_privacy_threshold",
                                     "roles", "pair_rules", "fallback", "adjustments"))
        roles = self.roles(top["roles"])
        known = {r.name for r in roles} | {OTHER}
        pair_rules: list[PairRule] = []
        for i, item in enumerate(self.sequence(top["pair_rules"], "pair_rules")):
            rule = self.pair_rule(item, _at("pair_rules", i), known)
            clash = next((j for j, r in enumerate(pair_rules) if r.name == rule.name), None)
            if clash is not None or rule.name == FALLBACK:
                self.fail(_at("pair_rules", i), f"rule name {rule.name!r} is already used"
                          + (f" by pair_rules[{clash}]" if clash is not None else " by the fallback") + "; give a `name`")
            pair_rules.append(rule)
        fallback = self.mapping(top["fallback"], "fallback", ("score",), ("adjust",))
        adjustments: list[Adjustment] = []
        for i, item in enumerate(self.sequence(top["adjustments"], "adjustments")):
            adjustment = self.adjustment(item, _at("adjustments", i))
            if any(a.name == adjustment.name for a in adjustments):
                self.fail(_at(_at("adjustments", i), "name"), f"{adjustment.name!r} is already used")
            adjustments.append(adjustment)
        return Rules(
            path=self.path,
            score_decimals=self.integer(top["score_decimals"], "score_decimals", 0, 10),
            likely_referral_at_least=self.number(top["likely_referral_at_least"], "likely_referral_at_least", _ZERO, _ONE),
            reverse_edge_privacy_threshold=self.integer(top["reverse_edge_privacy_threshold"],
                                                        "reverse_edge_privacy_threshold", 1, 1_000_000),
            roles=roles,
            pair_rules=tuple(pair_rules),
            fallback=PairRule(FALLBACK, None, None, self.number(fallback["score"], "fallback.score", _ZERO, _ONE),
                              self.boolean(fallback.get("adjust", True), "fallback.adjust")),
            adjustments=tuple(adjustments),
        )

    def roles(self, value: Any) -> tuple[Role, ...]:
        roles: list[Role] = []
        for i, item in enumerate(self.sequence(value, "roles", allow_empty=False)):
            where = _at("roles", i)
            entry = self.mapping(item, where, ("name", "match"))
            name = self.name(entry["name"], _at(where, "name"))
            if name in (ANY, OTHER):
                self.fail(_at(where, "name"), f"{name!r} is reserved (any: every role in a pair rule; other: no role)")
            if any(r.name == name for r in roles):
                self.fail(_at(where, "name"), f"role {name!r} is defined twice")
            matchers = tuple(self.matcher(m, _at(_at(where, "match"), j))
                             for j, m in enumerate(self.sequence(entry["match"], _at(where, "match"), allow_empty=False)))
            roles.append(Role(name, matchers))
        return tuple(roles)

    def matcher(self, value: Any, where: str) -> Matcher:
        entry = self.mapping(value, where, (), (*TAXONOMY_LEVELS, "has_specialization"))
        if not entry:
            self.fail(where, f"needs at least one of: {', '.join((*TAXONOMY_LEVELS, 'has_specialization'))}")
        levels = {level: self.taxonomy_names(entry[level], _at(where, level)) for level in TAXONOMY_LEVELS
                  if level in entry}
        has = entry.get("has_specialization")
        return Matcher(**levels, has_specialization=None if has is None else self.boolean(has, _at(where, "has_specialization")))

    def pair_roles(self, value: Any, where: str, known: set[str]) -> tuple[str, ...] | None:
        items = [value] if isinstance(value, str) else self.sequence(value, where, allow_empty=False)
        for item in items:
            if item != ANY and item not in known:
                self.fail(where, f"unknown role {item!r}; roles: {', '.join(sorted(known))}, or {ANY}")
        return None if ANY in items else tuple(dict.fromkeys(items))

    def pair_rule(self, value: Any, where: str, known: set[str]) -> PairRule:
        entry = self.mapping(value, where, ("from", "to", "score"), ("adjust", "name"))
        from_roles = self.pair_roles(entry["from"], _at(where, "from"), known)
        to_roles = self.pair_roles(entry["to"], _at(where, "to"), known)
        default = f"{'|'.join(from_roles or (ANY,))}->{'|'.join(to_roles or (ANY,))}"
        name = entry.get("name", default)
        if not isinstance(name, str) or not name.strip() or ";" in name:
            self.fail(_at(where, "name"), f"must be a non-empty text without ';', got {name!r}")
        return PairRule(name, from_roles, to_roles, self.number(entry["score"], _at(where, "score"), _ZERO, _ONE),
                        self.boolean(entry.get("adjust", True), _at(where, "adjust")))

    def adjustment(self, value: Any, where: str) -> Adjustment:
        entry = self.mapping(value, where, ("name", "signal", "weight"), ("at_most", "at_least"))
        name = self.name(entry["name"], _at(where, "name"))
        signal = entry["signal"]
        if signal not in SIGNALS:
            self.fail(_at(where, "signal"), f"unknown signal {signal!r}; signals: {', '.join(SIGNALS)}")
        if "at_most" not in entry and "at_least" not in entry:
            self.fail(where, "needs at_most and/or at_least")
        at_most = self.number(entry["at_most"], _at(where, "at_most"), _ZERO) if "at_most" in entry else None
        at_least = self.number(entry["at_least"], _at(where, "at_least"), _ZERO) if "at_least" in entry else None
        if at_most is not None and at_least is not None and at_least > at_most:
            self.fail(where, f"at_least {at_least} is above at_most {at_most}: it could never apply")
        weight = self.number(entry["weight"], _at(where, "weight"), -_ONE, _ONE)
        if weight == 0:
            self.fail(_at(where, "weight"), "0 changes nothing; remove the adjustment instead")
        return Adjustment(name, signal, at_most, at_least, weight)


# ------------------------------------------------------------------------------ Python: the reference

class Referral(NamedTuple):
    score: float
    rule: str
    from_role: str
    to_role: str


def score_edge(edge: Mapping[str, Any], rules: Rules | None = None) -> tuple[float, str]:
    """(referral_score, referral_rule) of one edge; see `evaluate_edge`."""
    result = evaluate_edge(edge, rules)
    return result.score, result.rule


def evaluate_edge(edge: Mapping[str, Any], rules: Rules | None = None) -> Referral:
    """Score, reason and both roles of one edge (a mapping with hop.edges_enriched's columns; missing
    keys count as NULL). Numbers may be int, Decimal, float or numeric text; NaN and Infinity count
    as NULL."""
    rules = rules or default_rules()
    from_role, to_role = role_of(edge, "from", rules), role_of(edge, "to", rules)
    rule = rules.pair_rule(from_role, to_role)
    score, reasons = rule.score, [rule.name]
    if rule.adjust:
        for adjustment in rules.adjustments:
            if _applies(adjustment, edge, rules):
                score += adjustment.weight
                reasons.append(adjustment.tag)
    score = min(max(score, _ZERO), _ONE)
    # PostgreSQL's round() takes halves away from zero: ROUND_HALF_UP for a score >= 0.
    score = score.quantize(_ONE.scaleb(-rules.score_decimals), rounding=ROUND_HALF_UP)
    return Referral(float(score), "; ".join(reasons), from_role, to_role)


def role_of(edge: Mapping[str, Any], side: str, rules: Rules | None = None) -> str:
    """The role of the `from` or `to` end of the edge: the first role with a fitting match, else `other`."""
    if side not in ("from", "to"):
        raise ValueError(f"side must be 'from' or 'to', got {side!r}")
    rules = rules or default_rules()
    names = {level: _taxonomy_name(edge.get(f"{side}_{level}")) for level in TAXONOMY_LEVELS}
    for role in rules.roles:
        if any(_fits(m, names) for m in role.matchers):
            return role.name
    return OTHER


def _taxonomy_name(value: Any) -> str | None:
    return None if value is None else str(value).translate(_ASCII_LOWER)  # = lower(value COLLATE "C")


def _fits(matcher: Matcher, names: Mapping[str, str | None]) -> bool:
    for level in TAXONOMY_LEVELS:
        wanted = getattr(matcher, level)
        if wanted is not None and names[level] not in wanted:
            return False
    has_specialization = names["specialization"] not in (None, "")
    return matcher.has_specialization is None or matcher.has_specialization == has_specialization


def _number(edge: Mapping[str, Any], column: str) -> Decimal | None:
    """The column's value as a decimal; None when NULL or not finite (NaN, Infinity), as the SQL does
    for the waits (the counts are integers)."""
    value = edge.get(column)
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{column}: expected a number, got {value!r}")
    if isinstance(value, float):
        value = format(value, ".15g")  # as PostgreSQL casts float8 to numeric (DBL_DIG digits)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{column}: expected a number, got {value!r}") from None
    return number if number.is_finite() else None


def _applies(adjustment: Adjustment, edge: Mapping[str, Any], rules: Rules) -> bool:
    numerator, denominator = SIGNALS[adjustment.signal]
    value = _number(edge, numerator)
    if value is not None:
        low = high = value
    elif numerator == CENSORED:  # the reverse edge was not released: it had 0 .. threshold - 1 patients
        low, high = _ZERO, Decimal(rules.reverse_edge_privacy_threshold - 1)
    else:
        return False
    scale = _ONE if denominator is None else _number(edge, denominator)
    if scale is None or scale <= 0:
        return False
    with localcontext() as ctx:
        ctx.prec = 100  # exact products, like PostgreSQL's numeric
        return ((adjustment.at_most is None or high <= adjustment.at_most * scale)
                and (adjustment.at_least is None or low >= adjustment.at_least * scale))


# ---------------------------------------------------------------------------------------- SQL

def role_sql(rules: Rules | None = None, alias: str = "t") -> sql.Composed:
    """The role of one provider as its 1-based position in `rules.role_names` (the last one is `other`),
    from the columns `grouping`, `classification`, `specialization` of the relation aliased `alias`.
    Computed once per NPI and handed to `score_sql(..., role_index_columns=...)`: a year has ~100 edges
    per NPI, and the role CASE is most of the scoring's cost."""
    rules = rules or default_rules()
    validate_identifier(alias, "alias")
    return _role_index(rules, "npi", lambda name: sql.Identifier(alias, name.removeprefix("npi_")))


def score_sql(rules: Rules | None = None, alias: str = "e",
              role_index_columns: tuple[str, str] | None = None) -> sql.Composed:
    """`<score> AS referral_score, <rule> AS referral_rule, <role> AS from_role, <role> AS to_role` over
    the relation aliased `alias` (hop.edges_enriched's columns); equal to `evaluate_edge` row by row.

    Each end's role is a CASE giving its position in `rules.role_names`. A matrix indexed [from role]
    [to role], filled in Python by `rules.pair_rule`, gives the number of the deciding rule, so the
    first-match order lives in one place; a simple `CASE <rule number> WHEN ...` (its operand is
    computed once) then gives the rule's score or text. Every output computes the roles anew (SQL
    cannot share them between columns), so the number of role CASEs per row is kept to six.
    `role_index_columns`: the relation's (from, to) columns that already hold `role_sql`'s indexes; then
    no role CASE runs per edge.
    """
    rules = rules or default_rules()
    validate_identifier(alias, "alias")

    def column(name: str) -> sql.Identifier:
        return sql.Identifier(alias, name)

    if role_index_columns is not None:
        from_index, to_index = (column(validate_identifier(c, "column name")) for c in role_index_columns)
    else:
        from_index, to_index = (_role_index(rules, side, column) for side in ("from", "to"))
    candidates = (*rules.pair_rules, rules.fallback)
    matrix = [[candidates.index(rules.pair_rule(f, t)) + 1 for t in rules.role_names] for f in rules.role_names]
    deciding = sql.SQL("(ARRAY[{}]::integer[])[{}][{}]").format(
        sql.SQL(", ").join(sql.SQL("[{}]").format(sql.SQL(", ").join(map(sql.Literal, row))) for row in matrix),
        from_index, to_index)
    used = sorted({n for row in matrix for n in row})  # rules shadowed by earlier ones never decide

    conditions = [(a, _adjustment_condition(a, rules, column)) for a in rules.adjustments]
    # Scores and weights as integers in units of 10^-scale (exact, and integer sums cost far less per
    # edge than numeric ones); one numeric division at the end, rounded as PostgreSQL rounds.
    scale = max(_decimals(v) for v in (*(r.score for r in candidates), *(a.weight for a in rules.adjustments)))
    total = sql.SQL(" + ").join(sql.SQL("CASE WHEN {} THEN {} ELSE 0 END").format(cond, sql.Literal(_units(a.weight, scale)))
                                for a, cond in conditions)
    tags = sql.SQL(", ").join(sql.SQL("CASE WHEN {} THEN {} END").format(cond, sql.Literal(a.tag))
                              for a, cond in conditions)
    scores, reasons = [], []
    for number in used:
        rule = candidates[number - 1]
        score, reason = sql.Literal(_units(rule.score, scale)), sql.Literal(rule.name)
        if rule.adjust and conditions:
            score = sql.SQL("{} + {}").format(score, total)
            reason = sql.SQL("concat_ws({}, {}, {})").format(sql.Literal("; "), reason, tags)  # skips NULL tags
        scores.append(sql.SQL("WHEN {} THEN {}").format(sql.Literal(number), score))
        reasons.append(sql.SQL("WHEN {} THEN {}").format(sql.Literal(number), reason))
    names = sql.SQL(", ").join(sql.Literal(n) for n in rules.role_names)
    return sql.SQL(", ").join([
        sql.SQL("round(least({}, greatest(0, CASE {} {} END))::numeric / {}, {}) AS referral_score").format(
            sql.Literal(10 ** scale), deciding, sql.SQL(" ").join(scores), sql.Literal(10 ** scale),
            sql.Literal(rules.score_decimals)),
        sql.SQL("CASE {} {} END AS referral_rule").format(deciding, sql.SQL(" ").join(reasons)),
        sql.SQL("(ARRAY[{}]::text[])[{}] AS from_role").format(names, from_index),
        sql.SQL("(ARRAY[{}]::text[])[{}] AS to_role").format(names, to_index),
    ])


def _decimals(value: Decimal) -> int:
    """Digits after the point of a decimal from the rules file (0.15 -> 2, 30 -> 0)."""
    return max(0, -value.normalize().as_tuple().exponent)


def _units(value: Decimal, scale: int) -> int:
    """The decimal as an integer number of 10^-scale units (exact: scale >= its decimals)."""
    return int(value.scaleb(scale))


def _finite(expression: sql.Composable) -> sql.Composed:
    """True for a number, false for NaN and the infinities (NaN sorts above Infinity), NULL for NULL."""
    return sql.SQL("({0} > {1} AND {0} < {2})").format(expression, sql.Literal("-Infinity"), sql.Literal("Infinity"))


def _role_index(rules: Rules, side: str, column: Callable[[str], sql.Identifier]) -> sql.Composed:
    """CASE WHEN <role 1 fits> THEN 1 ... ELSE <index of other> END"""
    whens = []
    for i, role in enumerate(rules.roles, start=1):
        fits = sql.SQL(" OR ").join(_matcher_condition(m, side, column) for m in role.matchers)
        whens.append(sql.SQL("WHEN {} THEN {}").format(fits, sql.Literal(i)))
    return sql.SQL("CASE {} ELSE {} END").format(sql.SQL(" ").join(whens), sql.Literal(len(rules.roles) + 1))


def _matcher_condition(matcher: Matcher, side: str, column: Callable[[str], sql.Identifier]) -> sql.Composed:
    parts = []
    for level in TAXONOMY_LEVELS:
        names = getattr(matcher, level)
        if names is not None:
            parts.append(sql.SQL('lower({} COLLATE "C") IN ({})').format(
                column(f"{side}_{level}"), sql.SQL(", ").join(sql.Literal(n) for n in names)))
    if matcher.has_specialization is not None:
        template = "{} <> {}" if matcher.has_specialization else "coalesce({}, {}) = {}"
        spec = column(f"{side}_specialization")
        parts.append(sql.SQL(template).format(spec, sql.Literal(""), sql.Literal("")))
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))


def _adjustment_condition(adjustment: Adjustment, rules: Rules,
                          column: Callable[[str], sql.Identifier]) -> sql.Composed:
    """The SQL of `_applies`: NULL (so: does not apply) when the signal cannot be computed.

    Both sides decide as exact decimals (`_applies`), but per edge the SQL avoids numeric, whose
    conversion from double precision is the costly part of scoring ~200M edges:
    - counts (integers): `count * 10^k <= m * patients` for a bound m / 10^k, in bigint;
    - waits (double precision): decided in double precision when the two sides differ by more than
      1e-12 of their size (float8::numeric keeps 15 digits, so the two readings differ by less than
      1e-14 of it and cannot disagree there), and only otherwise as numeric, like the Python side.
    """
    numerator, denominator = SIGNALS[adjustment.signal]
    if numerator in WAITS:
        return _wait_condition(adjustment, column(numerator), None if denominator is None else column(denominator))
    value = sql.SQL("{}::bigint").format(column(numerator))
    scale = sql.SQL("{}::bigint").format(column(denominator))
    parts = [sql.SQL("{} > 0").format(scale)]
    if adjustment.at_most is not None:
        high = (sql.SQL("coalesce({}, {})").format(value, sql.Literal(rules.reverse_edge_privacy_threshold - 1))
                if numerator == CENSORED else value)
        k = _decimals(adjustment.at_most)
        parts.append(sql.SQL("{} * {} <= {} * {}").format(high, sql.Literal(10 ** k),
                                                         sql.Literal(_units(adjustment.at_most, k)), scale))
    if adjustment.at_least is not None:
        low = sql.SQL("coalesce({}, 0)").format(value) if numerator == CENSORED else value
        k = _decimals(adjustment.at_least)
        parts.append(sql.SQL("{} * {} >= {} * {}").format(low, sql.Literal(10 ** k),
                                                         sql.Literal(_units(adjustment.at_least, k)), scale))
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))


def _wait_condition(adjustment: Adjustment, value: sql.Composable, scale: sql.Composable | None) -> sql.Composed:
    parts = [_finite(value)]
    if scale is not None:
        parts += [_finite(scale), sql.SQL("{} > 0").format(scale)]
    for bound, operator in ((adjustment.at_most, "<="), (adjustment.at_least, ">=")):
        if bound is None:
            continue
        limit = (sql.SQL("{}::float8").format(sql.Literal(str(bound))) if scale is None
                 else sql.SQL("{}::float8 * {}").format(sql.Literal(str(bound)), scale))
        exact = (sql.SQL("{}::numeric").format(sql.Literal(str(bound))) if scale is None
                 else sql.SQL("{}::numeric * {}::numeric").format(sql.Literal(str(bound)), scale))
        parts.append(sql.SQL(
            "CASE WHEN abs({v} - {limit}) > 1e-12::float8 * (abs({v}) + abs({limit})) THEN {v} {op} {limit} "
            "ELSE {v}::numeric {op} {exact} END").format(v=value, limit=limit, op=sql.SQL(operator), exact=exact))
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))
