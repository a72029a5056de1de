"""HCPCS/CPT code resolution: the local fallback CSV first, then the Clinical Tables HCPCS API (v3) in
batched OR queries, everything written to `maps.hcpcs_cache` through `include.maps.cache.upsert`.

    fallback = read_fallback(data_root / "raw/cpt/cpt_hcpcs_fallback.csv")      # {} when absent
    seed_fallback(conn, fallback, cache.pending(conn, "hcpcs"), api_run_id=run)  # no requests
    stats = resolve(conn, client, cache.pending(conn, "hcpcs"), api_run_id=run, fallback=fallback)
    # or both steps at once: resolve_pending(conn, client, fallback=fallback, api_run_id=run)

Request discipline (the seed's rules, kept minimal):
- Codes the fallback knows are seeded into the cache as `found`/`fallback` before any API lookup and are
  NOT sent to the API (they are no longer pending). `resolve` itself sends every valid code it is given:
  the caller passes what is still pending.
- One request per batch of `batch_size` codes when healthy: `terms=` (empty: the real API requires the
  parameter; empty text matches everything, `q` narrows it), `q=code:(A OR B …)`, `ef=<EF_FIELDS>`,
  `count=500` (the documented maximum; a batch is never larger). No `sf`: with empty `terms` the search
  fields do not matter. So requests (as the resolver counts them) = ⌈codes/batch⌉ + one per code of a
  failed batch; at the server each request may also be retried by the HttpClient (429/5xx/not JSON).
- A batch that fails for good (HttpError after the client's retries, or an answer of the wrong shape) is
  retried code by code; a single request that still fails is written as `error` (pending again next run).
- A code the API does not know is looked up in the fallback before it is written as `not_found`.
- Codes whose shape no HCPCS/CPT code has (see `is_valid_shape`) are `invalid` (source `input`), never sent.
- The cache is upserted after every batch: a killed run keeps what finished; a rerun asks only `pending`.

Identifiers: the cache key is the code exactly as given (the wanted set's value); the request uses its
normalised form (whitespace removed, upper-case, a trailing `.0` dropped).

response_json (one code each, always the API's array shape `[total, codes, extra, display]`):
- API rows: the slice of the batch answer for that code, e.g.
  `[1, ["J1100"], {"short_desc": ["…"], …, "is_noc": [false]}, [["J1100", "…"]]]`; `not_found` rows:
  `[0, [], {"short_desc": [], …}, []]`. url / request_params / requested_at_utc are the batch request's.
- Fallback rows (synthetic): `[1, [code], {ef fields from the CSV row}, [[code, short_desc]],
  {"synthetic": true, "source": "fallback", "source_file": "…"}]` — a fifth element marks them
  (`is_fallback_payload`); elements 0–3 read exactly like an API answer. Booleans are JSON booleans,
  dates the CSV's strings ("" when unknown), as the API shows them.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
import requests

from include.common.errors import HttpError
from include.common.files import read_text
from include.download import cpt as cpt_download
from include.download.cpt import FallbackRow
from include.maps import cache
from include.maps.cache import CacheRow

log = logging.getLogger("claimsflow.maps.hcpcs")

SEARCH_PATH = "/api/hcpcs/v3/search"
EF_FIELDS = ("short_desc", "long_desc", "add_dt", "act_eff_dt", "term_dt", "obsolete", "is_noc")
MAX_COUNT = 500  # the API's documented maximum page size
DEFAULT_BATCH_SIZE = 100
# 5 digits (CPT), letter + 4 digits (Level II, CDT-shaped), 4 digits + letter (CPT PLA / Category II / III).
VALID_SHAPE = re.compile(r"^(?:\d{5}|[A-Z]\d{4}|\d{4}[A-Z])$")
FALLBACK_MARKER_KEY = "synthetic"

__all__ = [
    "EF_FIELDS", "SEARCH_PATH", "FallbackRow", "HcpcsResponseError", "BatchAnswer", "ResolveStats",
    "normalise_code", "is_valid_shape", "read_fallback", "fallback_payload", "is_fallback_payload", "ef_values",
    "seed_fallback", "request_params", "resolve_batch", "resolve", "resolve_pending", "expected_requests",
]


class JsonClient(Protocol):  # what the resolver needs of include.http.client.HttpClient
    def url(self, path_or_url: str) -> str: ...

    def get_json(self, path_or_url: str, *, params: dict[str, Any] | None = None) -> Any: ...


class HcpcsResponseError(HttpError):
    """The API answered JSON that is not the v3 `[total, codes, extra, display]` array we asked for."""


# -------------------------------------------------------------------------------------------- codes
def normalise_code(raw: Any) -> str | None:
    """Whitespace removed, upper-case, a trailing `.0` dropped; None unless 5 letters/digits."""
    if raw is None:
        return None
    return cpt_download.normalise_code(str(raw))


def is_valid_shape(code: str) -> bool:
    """A normalised code in one of the real HCPCS/CPT shapes (`99213`, `J1100`, `0001U`, `1234F`)."""
    return bool(VALID_SHAPE.match(code))


# -------------------------------------------------------------------------------------------- fallback
_FALLBACK_ALIASES: dict[str, tuple[str, ...]] = {**cpt_download.ALIASES, "source_file": ("sourcefile", "source")}


def read_fallback(path: str | Path | None) -> dict[str, FallbackRow]:
    """The fallback CSV (`build_fallback`'s columns; headers matched loosely, extra columns ignored)
    as normalised code -> row. No path, a missing or empty file: {} (resolution runs without fallback)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        log.warning("no HCPCS fallback CSV at %s; resolving without fallback", path)
        return {}
    text = read_text(path)
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        return {}
    cols = cpt_download.column_positions(header, _FALLBACK_ALIASES)
    if not cpt_download.has_code_and_description(cols):
        raise ValueError(f"{path}: not a fallback CSV (needs a code column and a description column; header {header})")
    out: dict[str, FallbackRow] = {}
    for entry in cpt_download.fallback_rows(reader, cols, source_file=None):
        code = entry.code
        current = out.get(code)
        if current is None or entry.score() > current.score():
            out[code] = entry
    log.info("read %d fallback codes from %s", len(out), path)
    return out


def fallback_payload(row: FallbackRow) -> list:
    """The synthetic API answer for one fallback code (see the module docstring)."""
    extra = {"short_desc": [row.short_desc], "long_desc": [row.long_desc], "add_dt": [row.add_dt],
             "act_eff_dt": [row.act_eff_dt], "term_dt": [row.term_dt], "obsolete": [bool(row.obsolete)],
             "is_noc": [bool(row.is_noc)]}
    marker = {FALLBACK_MARKER_KEY: True, "source": "fallback", "source_file": row.source_file}
    return [1, [row.code], extra, [[row.code, row.short_desc]], marker]


def is_fallback_payload(payload: Any) -> bool:
    return (isinstance(payload, list) and len(payload) >= 5 and isinstance(payload[4], dict)
            and payload[4].get(FALLBACK_MARKER_KEY) is True)


def ef_values(payload: Any) -> dict[str, Any]:
    """ef field -> value for a one-code payload (API slice or synthetic); {} for not_found/None."""
    if not isinstance(payload, list) or len(payload) < 4 or not payload[1] or not isinstance(payload[2], dict):
        return {}
    return {name: (values[0] if isinstance(values, list) and values else None) for name, values in payload[2].items()}


def _fallback_row(identifier: str, row: FallbackRow, api_run_id: str | None, *, asked: _Asked | None = None) -> CacheRow:
    return CacheRow(identifier, "found", "fallback", url=asked.url if asked else None,
                    request_params=asked.params if asked else None, api_run_id=api_run_id,
                    requested_at_utc=asked.at if asked else None, response_json=fallback_payload(row))


def seed_fallback(conn: psycopg.Connection, fallback: Mapping[str, FallbackRow], wanted_codes: Iterable[str], *,
                  api_run_id: str | None) -> int:
    """Write `found`/`fallback` rows for the wanted codes the fallback knows; returns how many.
    Pass the codes still pending (`cache.pending(conn, "hcpcs")`): a definite API answer already
    cached is not replaced. No requests; these codes are then no longer pending, so never sent."""
    rows = []
    for identifier in dict.fromkeys(wanted_codes):
        code = normalise_code(identifier)
        if code and code in fallback:
            rows.append(_fallback_row(identifier, fallback[code], api_run_id))
    if rows:
        cache.upsert(conn, "hcpcs", rows)
    log.info("seeded %d HCPCS codes from the fallback", len(rows))
    return len(rows)


# -------------------------------------------------------------------------------------------- API
def request_params(codes: Sequence[str]) -> dict[str, str]:
    return {"terms": "", "q": "code:(" + " OR ".join(codes) + ")", "ef": ",".join(EF_FIELDS), "count": str(MAX_COUNT)}


@dataclass(frozen=True)
class _Asked:
    url: str
    params: dict[str, str]
    at: Any


@dataclass(frozen=True)
class BatchAnswer:
    """One request's outcome: code -> found payload slice; the codes the API does not know."""
    found: dict[str, list]
    missing: list[str]
    url: str
    params: dict[str, str]
    requested_at_utc: Any


def _full_url(client: JsonClient, params: dict[str, str]) -> str:
    return requests.Request("GET", client.url(SEARCH_PATH), params=params).prepare().url or client.url(SEARCH_PATH)


def _validate(answer: Any, codes: Sequence[str], source: str) -> tuple[int, list[str], dict[str, list], list[list]]:
    def bad(why: str) -> HcpcsResponseError:
        snippet = repr(answer)
        return HcpcsResponseError(f"not a Clinical Tables v3 answer ({why}): {snippet[:200]}", source=source)

    if not isinstance(answer, list) or len(answer) != 4:
        raise bad("expected a 4-element array [total, codes, extra, display]")
    total, found, extra, display = answer
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise bad("total is not a non-negative integer")
    if not isinstance(found, list) or not all(isinstance(c, str) for c in found):
        raise bad("codes is not a list of strings")
    if total < len(found):
        raise bad(f"total {total} < {len(found)} codes returned")
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise bad("extra is neither an object nor null")
    if found:
        for name in EF_FIELDS:
            values = extra.get(name)
            if not isinstance(values, list) or len(values) != len(found):
                raise bad(f"extra field {name!r} missing or not aligned with codes")
    if not isinstance(display, list) or len(display) != len(found) or not all(isinstance(d, list) for d in display):
        raise bad("display is not a list of lists aligned with codes")
    return total, found, extra, display


def resolve_batch(client: JsonClient, codes: Sequence[str], *, api_run_id: str | None, count: int = MAX_COUNT) -> list[CacheRow]:
    """ONE request for up to `count` normalised codes; rows for every code: `found` (source api, the
    answer's slice) or `not_found` (a candidate: `resolve` checks the fallback first). Raises HttpError
    (the client's, after its retries) or HcpcsResponseError (wrong shape)."""
    answer = _ask(client, codes, count=count)
    rows = [CacheRow(code, "found", "api", url=answer.url, request_params=answer.params, api_run_id=api_run_id,
                     requested_at_utc=answer.requested_at_utc, response_json=payload)
            for code, payload in answer.found.items()]
    rows += [CacheRow(code, "not_found", "api", url=answer.url, request_params=answer.params, api_run_id=api_run_id,
                      requested_at_utc=answer.requested_at_utc, response_json=_empty_payload())
             for code in answer.missing]
    return rows


def _empty_payload() -> list:
    return [0, [], {name: [] for name in EF_FIELDS}, []]


def _ask(client: JsonClient, codes: Sequence[str], *, count: int = MAX_COUNT) -> BatchAnswer:
    codes = list(dict.fromkeys(codes))
    if not codes:
        raise ValueError("resolve_batch needs at least one code")
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f"count must be 1..{MAX_COUNT}, got {count}")
    if len(codes) > count:
        raise ValueError(f"a batch of {len(codes)} codes does not fit one page of {count}")
    bad = [c for c in codes if not (isinstance(c, str) and is_valid_shape(c))]
    if bad:
        raise ValueError(f"not normalised, valid HCPCS codes: {bad[:5]}")
    params = request_params(codes)
    params["count"] = str(count)
    url = _full_url(client, params)
    at = cache.utc_now()
    answer = client.get_json(SEARCH_PATH, params=params)
    total, found, extra, display = _validate(answer, codes, client.url(SEARCH_PATH))
    wanted = set(codes)
    slices: dict[str, list] = {}
    for i, code in enumerate(found):
        key = code.strip().upper()
        if key not in wanted or key in slices:
            continue
        slices[key] = [1, [code], {name: [values[i]] for name, values in extra.items()
                                   if isinstance(values, list) and len(values) == len(found)}, [display[i]]]
    missing = [c for c in codes if c not in slices]
    if missing and total > len(found):  # a later page might hold them: not a definite "unknown"
        raise HcpcsResponseError(f"{total} matches but only {len(found)} returned and {len(missing)} requested "
                                 f"codes absent (e.g. {missing[:3]}); the answer is incomplete",
                                 source=client.url(SEARCH_PATH))
    return BatchAnswer(slices, missing, url, params, at)


# -------------------------------------------------------------------------------------------- driver
@dataclass
class ResolveStats:
    """requests: logical requests sent by the resolver (one per batch + one per single-code retry);
    HttpClient retries of one request are not counted here (the server log shows them).
    found: `found` via the API; from_fallback: `found` via the fallback after the API did not know the
    code; not_found / error / invalid: rows written with that status; seeded_from_fallback: rows
    `seed_fallback` wrote before the API (only `resolve_pending` fills it)."""
    codes: int = 0
    seeded_from_fallback: int = 0
    requests: int = 0
    batches: int = 0
    failed_batches: int = 0
    single_requests: int = 0
    found: int = 0
    not_found: int = 0
    error: int = 0
    invalid: int = 0
    from_fallback: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def resolve(conn: psycopg.Connection, client: JsonClient, codes: Iterable[str], *, batch_size: int = DEFAULT_BATCH_SIZE,
            api_run_id: str | None, fallback: Mapping[str, FallbackRow] | None = None) -> ResolveStats:
    """Resolve the given codes (normally `cache.pending`, after `seed_fallback`) against the API in
    batches of `batch_size`, upserting after every batch. See the module docstring for the rules."""
    if not 1 <= batch_size <= MAX_COUNT:
        raise ValueError(f"batch size must be 1..{MAX_COUNT}, got {batch_size}")
    fallback = fallback or {}
    stats = ResolveStats()
    by_code: dict[str, list[str]] = {}  # normalised code -> identifiers as given
    invalid: list[CacheRow] = []
    for identifier in dict.fromkeys(codes):
        stats.codes += 1
        code = normalise_code(identifier)
        if code is None or not is_valid_shape(code):
            invalid.append(CacheRow(identifier, "invalid", "input", api_run_id=api_run_id,
                                    error_message="not an HCPCS/CPT code shape (5 digits, letter + 4 digits, "
                                                  "or 4 digits + letter)"))
        else:
            by_code.setdefault(code, []).append(identifier)
    if invalid:
        cache.upsert(conn, "hcpcs", invalid)
        stats.invalid += len(invalid)

    batches = cache.in_batches(list(by_code), batch_size)
    for n, batch in enumerate(batches, 1):
        stats.batches += 1
        stats.requests += 1
        try:
            rows = resolve_batch(client, batch, api_run_id=api_run_id, count=MAX_COUNT)
        except HttpError as exc:
            stats.failed_batches += 1
            log.warning("HCPCS batch %d/%d (%d codes) failed (%s); retrying code by code", n, len(batches),
                        len(batch), exc)
            rows = []
            for code in batch:
                stats.requests += 1
                stats.single_requests += 1
                try:
                    rows += resolve_batch(client, [code], api_run_id=api_run_id, count=MAX_COUNT)
                except HttpError as single_exc:
                    params = request_params([code])
                    rows.append(CacheRow(code, "error", "api", url=_full_url(client, params), request_params=params,
                                         api_run_id=api_run_id, requested_at_utc=cache.utc_now(),
                                         error_message=str(single_exc)[:2000]))
        out = []
        for row in rows:
            if row.status == "not_found" and row.identifier in fallback:
                row = _fallback_row(row.identifier, fallback[row.identifier], api_run_id,
                                    asked=_Asked(row.url or "", row.request_params or {}, row.requested_at_utc))
                stats.from_fallback += 1
            elif row.status == "found":
                stats.found += 1
            elif row.status == "not_found":
                stats.not_found += 1
            else:
                stats.error += 1
            for identifier in by_code[row.identifier]:  # back to the identifiers as given
                out.append(row if identifier == row.identifier else _with_identifier(row, identifier))
        cache.upsert(conn, "hcpcs", out)
        log.info("HCPCS batch %d/%d: %d codes; totals %s", n, len(batches), len(batch), stats.as_dict())
    return stats


def _with_identifier(row: CacheRow, identifier: str) -> CacheRow:
    return CacheRow(identifier, row.status, row.source, row.url, row.request_params, row.api_run_id,
                    row.requested_at_utc, row.error_message, row.response_json)


def resolve_pending(conn: psycopg.Connection, client: JsonClient | None, *, fallback: Mapping[str, FallbackRow],
                    api_run_id: str | None, batch_size: int = DEFAULT_BATCH_SIZE) -> ResolveStats:
    """The whole HCPCS step over `maps.hcpcs_wanted` in one process: seed the fallback for the pending
    codes, then ask the API for what is still pending (client None = skip_api: seeding only).
    Split across workers: call `seed_fallback` once, then `resolve` on disjoint chunks of `pending`."""
    seeded = seed_fallback(conn, fallback, cache.pending(conn, "hcpcs"), api_run_id=api_run_id)
    if client is None:
        return ResolveStats(seeded_from_fallback=seeded)
    stats = resolve(conn, client, cache.pending(conn, "hcpcs"), batch_size=batch_size, api_run_id=api_run_id,
                    fallback=fallback)
    stats.seeded_from_fallback = seeded
    return stats


def expected_requests(n_codes: int, batch_size: int) -> int:
    """Requests of a healthy run: ⌈codes / batch⌉."""
    return math.ceil(n_codes / batch_size) if n_codes else 0
