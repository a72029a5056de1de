"""One loopback HTTP server that stands in for every external host claimsflow talks to.

    with SandboxServer(sandbox_dir, rate_limit=2) as server:
        server.url                      # http://127.0.0.1:<port>; point every connection at it
        server.inject("truncate", path="/nppes/", count=1)
        ...
        server.requests()               # what was asked, when, with which Range, and what was answered

It serves, from a generated sandbox (`manifest.json` + `site/`):
- the download sites: `site/<url path>` with Content-Length, ETag, Last-Modified, HEAD, Range (206/416),
  conditional requests (304), `If-Range`; directory traversal is refused;
- the NPI Registry API v2.1 (`/api/?version=2.1&number=...` and its search parameters), answering from
  the sandbox's provider universe (`providers.api_provider`), in the real JSON shapes and errors;
- the NLM Clinical Tables HCPCS API v3 (`/api/hcpcs/v3/search`) with `terms`, `q=code:(A OR B)`, `ef`,
  `df`, `count`, `offset`, answering the real `[total, codes, extra, display]` array.

Faults are queued per path prefix and consumed one per request: 429 (+Retry-After), 5xx, slow,
timeout (hang, then close), truncate (announce the full length, send part), malformed_json, reset,
changed_index (index pages rewritten: absolute links, other quoting and case, rows reordered).
An optional token bucket per client and API on `/api/` answers 429 with Retry-After when exceeded.
Control over HTTP for other processes: GET/DELETE /_sandbox/requests, POST/DELETE /_sandbox/faults,
GET /_sandbox/health.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import math
import mimetypes
import os
import re
import socket
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from include.sandbox import codes as code_universe
from include.sandbox import providers
from include.sandbox.core import SITE, Manifest

log = logging.getLogger("claimsflow.sandbox.server")

CHUNK = 1 << 20
FAULT_KINDS = {"429", "5xx", "slow", "timeout", "truncate", "malformed_json", "reset", "changed_index"}
REAL_HOSTS = {  # for changed_index: the absolute links real pages would carry
    "/nppes/": "https://download.cms.gov",
    "/medicare/": "https://www.cms.gov",
    "/files/": "https://www.cms.gov",
}
NPI_SEARCH_FIELDS = ("first_name", "last_name", "organization_name", "city", "state", "postal_code",
                     "taxonomy_description", "enumeration_type", "country_code")
HCPCS_FIELDS = ("code", "display", "short_desc", "long_desc", "add_dt", "act_eff_dt", "term_dt", "obsolete", "is_noc")


@dataclass
class RequestRecord:
    ts: float  # time.time() when the request arrived
    client: str
    method: str
    path: str
    query: str
    status: int
    bytes_sent: int
    range: str | None = None
    fault: str | None = None


@dataclass
class Fault:
    kind: str
    path: str = ""
    count: int = 1
    params: dict[str, Any] = field(default_factory=dict)


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = float(burst), time.monotonic()

    def take(self) -> float:
        """0 if a token was taken, else the seconds until one is free."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class SandboxServer:
    def __init__(self, data_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 0,
                 rate_limit: float | None = None, burst: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.site = self.data_dir / SITE
        manifest = Manifest.read(self.data_dir)
        self.seed = manifest.seed
        self.scale = manifest.scale
        self.host, self._port = host, port
        self._lock = threading.Lock()
        self._log: list[RequestRecord] = []
        # Requests being answered: a client can read its response before the handler has logged it,
        # so readers of the log wait for those (briefly) to see every request already answered.
        self._inflight = 0
        self._settled = threading.Condition(self._lock)
        self._faults: deque[Fault] = deque()
        self._buckets: dict[str, TokenBucket] = {}
        self.set_rate_limit(rate_limit, burst)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._hcpcs: list[code_universe.Code] | None = None
        self._npi_index: list[providers.Provider] | None = None

    # -------------------------------------------------------------------------------- lifecycle
    def start(self) -> SandboxServer:
        handler = type("Handler", (_Handler,), {"sandbox": self})
        self._httpd = ThreadingHTTPServer((self.host, self._port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sandbox-server", daemon=True)
        self._thread.start()
        log.info("sandbox server on %s serving %s", self.url, self.data_dir)
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -------------------------------------------------------------------------------- control
    def requests(self, path: str = "") -> list[RequestRecord]:
        with self._settled:
            self._settled.wait_for(lambda: self._inflight == 0, timeout=2.0)
            return [r for r in self._log if r.path.startswith(path)]

    def clear_requests(self) -> None:
        with self._settled:
            self._settled.wait_for(lambda: self._inflight == 0, timeout=2.0)
            self._log.clear()

    def _begin(self) -> None:
        with self._lock:
            self._inflight += 1

    def inject(self, kind: str, *, path: str = "", count: int = 1, **params: Any) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(sorted(FAULT_KINDS))}")
        with self._lock:
            self._faults.append(Fault(kind, path, count, params))

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def set_rate_limit(self, rate: float | None, burst: int | None = None) -> None:
        with self._lock:
            self.rate_limit = rate
            self.burst = burst if burst is not None else max(1, int(rate or 1))
            self._buckets.clear()

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _rate_wait(self, client: str, path: str) -> float:
        if not self.rate_limit or not path.startswith("/api"):
            return 0.0
        # one bucket per client and API: the NPI Registry and Clinical Tables limit independently
        api = "clinical_tables" if path.startswith("/api/hcpcs") else "npi_registry"
        with self._lock:
            bucket = self._buckets.setdefault(f"{client} {api}", TokenBucket(self.rate_limit, self.burst))
            return bucket.take()

    def _record(self, record: RequestRecord) -> None:
        with self._settled:
            self._log.append(record)
            self._inflight -= 1
            self._settled.notify_all()

    # -------------------------------------------------------------------------------- APIs
    def npi_api(self, query: dict[str, str]) -> dict:
        version = query.get("version", "")
        if version != "2.1":
            return _npi_error("Unsupported Version", "version", version)
        number = query.get("number", "").strip()
        criteria = {k: query[k].strip() for k in NPI_SEARCH_FIELDS if query.get(k, "").strip()}
        if not number and not criteria:
            return _npi_error("No valid search criteria provided", "", "")
        try:
            limit = int(query.get("limit", "10") or 10)
            skip = int(query.get("skip", "0") or 0)
        except ValueError:
            return _npi_error("Invalid limit or skip", "limit", query.get("limit", ""))
        if not 1 <= limit <= 200:
            return _npi_error("Field limit must be between 1 and 200", "limit", str(limit))
        if not 0 <= skip <= 1000:
            return _npi_error("Field skip must be between 0 and 1000", "skip", str(skip))
        if number:
            if not (len(number) == 10 and number.isdigit()):
                return _npi_error("Field number must be a 10 digit number", "number", number)
            p = providers.api_provider(self.seed, number, self.scale["spending_npis"], self.scale["nppes_rows"])
            found = [p] if p and _matches(p, criteria) else []
        else:
            found = [p for p in self._providers() if _matches(p, criteria)]
        page = found[skip: skip + limit]
        return {"result_count": len(page), "results": [providers.api_result(p) for p in page]}

    def _providers(self) -> list[providers.Provider]:
        # Search scans every provider the API knows; built once. Fine at tiny/demo scale, slow at full.
        with self._lock:
            if self._npi_index is None:
                spending, rows = self.scale["spending_npis"], self.scale["nppes_rows"]
                found = []
                for i in range(max(spending, rows)):
                    category = providers.category_of(self.seed, i, spending)
                    if category == "filler" or category in providers.API_KNOWS:
                        found.append(providers.provider(self.seed, i, spending, version=int(category == "weekly_update")))
                self._npi_index = found
            return self._npi_index

    def hcpcs_api(self, query: dict[str, str]) -> list:
        with self._lock:
            if self._hcpcs is None:
                self._hcpcs = [c for c in code_universe.codes(self.seed, self.scale["hcpcs_codes"]) if c.source == "api"]
        items = self._hcpcs
        q = query.get("q", "").strip()
        if q:
            m = re.fullmatch(r"code:\((.*)\)|code:(\S+)", q)
            if not m:
                raise ValueError(f"unsupported q syntax {q!r}")
            wanted = {c.strip().upper() for c in re.split(r"\s+OR\s+", m.group(1) or m.group(2)) if c.strip()}
            items = [c for c in items if c.code.upper() in wanted]
        terms = query.get("terms", "").strip().lower()
        if terms:
            words = terms.split()
            items = [c for c in items if all(any(w.startswith(t) for w in (c.code.lower(), *c.short_desc.lower().split()))
                                             for t in words)]
        count = min(max(int(query.get("count", "7") or 7), 0), 500)
        offset = max(int(query.get("offset", "0") or 0), 0)
        page = items[offset: offset + count]
        ef = [f for f in query.get("ef", "").split(",") if f]
        df = [f for f in (query.get("df", "") or "code,display").split(",") if f]
        for name in (*ef, *df):
            if name not in HCPCS_FIELDS:
                raise ValueError(f"unknown field {name!r}")
        extra = {name: [_hcpcs_field(c, name) for c in page] for name in ef} if ef else None
        display = [[str(_hcpcs_field(c, name)) for name in df] for c in page]
        return [len(items), [c.code for c in page], extra, display]


def _hcpcs_field(c: code_universe.Code, name: str) -> Any:
    if name == "display":
        return c.short_desc
    if name in ("obsolete", "is_noc"):
        return getattr(c, name)
    return getattr(c, name)


def _npi_error(description: str, field_name: str, number: str) -> dict:
    return {"Errors": [{"description": description, "field": field_name, "number": number}]}


def _matches(p: providers.Provider, criteria: dict[str, str]) -> bool:
    def like(value: str, pattern: str) -> bool:  # the real API allows a trailing * wildcard
        value, pattern = value.upper(), pattern.upper()
        return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern

    for key, wanted in criteria.items():
        if key == "first_name" and not like(p.first_name, wanted):
            return False
        if key == "last_name" and not like(p.last_name, wanted):
            return False
        if key == "organization_name" and not like(p.organization_name, wanted):
            return False
        if key == "city" and not like(p.location.city, wanted):
            return False
        if key == "state" and p.location.state != wanted.upper():
            return False
        if key == "postal_code" and not p.location.postal_code.startswith(wanted.rstrip("*")):
            return False
        if key == "enumeration_type" and f"NPI-{p.entity_type}" != wanted.upper():
            return False
        if key == "country_code" and wanted.upper() != "US":
            return False
        if key == "taxonomy_description":
            descs = [providers._taxonomy_desc(code).upper() for code, *_ in p.taxonomies]
            if not any(wanted.upper().rstrip("*") in d for d in descs):
                return False
    return not p.is_deactivated or not criteria


def changed_index(page: str, path: str) -> str:
    """The same page as CMS might reshuffle it: absolute links, single quotes, upper-case HREF,
    spaces around '=', and its link lines in reverse order. Deterministic."""
    host = next((h for prefix, h in REAL_HOSTS.items() if path.startswith(prefix)), "https://www.cms.gov")
    folder = path.rsplit("/", 1)[0] + "/"

    def absolute(m: re.Match) -> str:
        href = m.group(1)
        if not href.startswith(("http://", "https://", "#", "mailto:")):
            href = host + (href if href.startswith("/") else folder + href.removeprefix("./"))
        return f"HREF = '{href}'"

    page = re.sub(r'href="([^"]*)"', absolute, page, flags=re.IGNORECASE)
    lines = page.splitlines()
    link_lines = [i for i, line in enumerate(lines) if "HREF" in line]
    for i, j in zip(link_lines, reversed(link_lines), strict=True):
        if i >= j:
            break
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines) + "\n"


class _Handler(BaseHTTPRequestHandler):
    sandbox: SandboxServer
    protocol_version = "HTTP/1.1"
    server_version = "claimsflow-sandbox/1.0"

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s " + fmt, self.client_address[0], *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        arrived = time.time()  # the log's timestamp: when the request arrived (what rate limits count)
        split = urlsplit(self.path)
        path = unquote(split.path)
        if method in ("POST", "DELETE") and path != "/_sandbox/faults":
            # No other endpoint reads a body; left unread, it would be parsed as the next request.
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path.startswith("/_sandbox/"):
            return self._control(method, path)
        self.sandbox._begin()  # paired with _record in the finally below
        self._sent = 0
        self._status = 0
        self._fault_name: str | None = None
        client = self.client_address[0]
        try:
            wait = self.sandbox._rate_wait(client, path)
            if wait > 0:
                self._fault_name = "rate_limit"
                self._send_body(429, b'{"error":"rate limit exceeded"}', "application/json",
                                {"Retry-After": str(max(1, math.ceil(wait)))})
                return
            fault = self.sandbox._take_fault(path)
            if fault is not None:
                self._fault_name = fault.kind
                if self._apply_fault(fault, method, path, split.query):
                    return
            if path.rstrip("/") == "/api" and method in ("GET", "HEAD"):
                self._json(self.sandbox.npi_api(_query(split.query)), method)
            elif path == "/api/hcpcs/v3/search" and method in ("GET", "HEAD"):
                try:
                    body = self.sandbox.hcpcs_api(_query(split.query))
                except ValueError as exc:
                    self._send_body(400, json.dumps({"error": str(exc)}).encode(), "application/json")
                    return
                self._json(body, method)
            elif method in ("GET", "HEAD"):
                self._static(method, path, transform=fault.kind if fault else None)
            else:
                self._send_body(405, b"method not allowed\n", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.sandbox._record(RequestRecord(arrived, client, method, path, split.query, self._status, self._sent,
                                               self.headers.get("Range"), self._fault_name))

    def _apply_fault(self, fault: Fault, method: str, path: str, query: str) -> bool:
        """True when the fault answered the request itself."""
        kind, params = fault.kind, fault.params
        if kind == "429":
            self._send_body(429, b"Too Many Requests\n", "text/plain", {"Retry-After": str(params.get("retry_after", 1))})
        elif kind == "5xx":
            self._send_body(int(params.get("status", 503)), b"Service Unavailable\n", "text/plain")
        elif kind == "slow":
            time.sleep(float(params.get("delay", 1.0)))
            return False
        elif kind == "timeout":
            time.sleep(float(params.get("delay", 5.0)))
            self._status = 0
            self.close_connection = True
        elif kind == "reset":
            self._status = 0
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
        elif kind == "malformed_json":
            self._send_body(200, b'{"result_count": 1, "results": [{"number": "12', "application/json")
        elif kind == "truncate":
            self._static(method, path, truncate=float(params.get("fraction", 0.5)))
        elif kind == "changed_index":
            return False  # handled by the static path
        return True

    # ------------------------------------------------------------------------------------------
    def _control(self, method: str, path: str) -> None:
        server = self.sandbox
        if path == "/_sandbox/health":
            self._send_body(200, b'{"ok": true}', "application/json", record=False)
        elif path == "/_sandbox/requests" and method == "GET":
            body = json.dumps([asdict(r) for r in server.requests()]).encode()
            self._send_body(200, body, "application/json", record=False)
        elif path == "/_sandbox/requests" and method == "DELETE":
            server.clear_requests()
            self._send_body(204, b"", "application/json", record=False)
        elif path == "/_sandbox/faults" and method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            try:
                spec = json.loads(self.rfile.read(length) or b"{}")
                # Checked here: a non-object body used to drop the connection unanswered, and a path that is
                # not a string was queued and then broke every later request.
                if not isinstance(spec, dict) or "kind" not in spec or not isinstance(spec.get("path", ""), str):
                    raise ValueError('a fault is a JSON object: {"kind": "...", "path": "/prefix/", "count": 1, ...}')
                kind = spec.pop("kind")
                count = int(spec.pop("count", 1))
                if count < 1:
                    raise ValueError(f"count must be at least 1, got {count}")
                server.inject(kind, path=spec.pop("path", ""), count=count, **spec)
            except (ValueError, KeyError, TypeError) as exc:
                self._send_body(400, json.dumps({"error": str(exc)}).encode(), "application/json", record=False)
                return
            self._send_body(201, b'{"queued": true}', "application/json", record=False)
        elif path == "/_sandbox/faults" and method == "DELETE":
            server.reset_faults()
            self._send_body(204, b"", "application/json", record=False)
        else:
            self._send_body(404, b'{"error": "unknown control path"}', "application/json", record=False)

    def _json(self, body: Any, method: str) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self._send_body(200, data, "application/json", head=method == "HEAD")

    def _send_body(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None, *,
                   head: bool = False, record: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        # A HEAD answer never has a body (404s and fault answers included): bytes written anyway would be
        # read as the start of the next answer on the kept-alive connection.
        if not head and self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)
            self._sent = len(body)
        self._status = status

    def _resolve(self, path: str) -> Path | None:
        if "\x00" in path or any(part == ".." for part in path.split("/")):
            return None
        candidate = (self.sandbox.site / path.lstrip("/")).resolve()
        if candidate != self.sandbox.site and self.sandbox.site not in candidate.parents:
            return None
        if candidate.is_dir():
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None

    def _static(self, method: str, path: str, *, transform: str | None = None, truncate: float | None = None) -> None:
        file = self._resolve(path)
        if file is None:
            self._send_body(404, f"<html><body><h1>404 Not Found</h1><p>{path}</p></body></html>".encode(), "text/html")
            return
        st = file.stat()
        content_type = mimetypes.guess_type(file.name)[0] or ("text/html" if "." not in file.name else "application/octet-stream")
        if transform == "changed_index" and content_type == "text/html":
            body = changed_index(file.read_text(encoding="utf-8", errors="replace"), path).encode()
            self._send_body(200, body, "text/html; charset=utf-8", head=method == "HEAD")
            return
        etag = '"' + hashlib.sha1(f"{st.st_size}-{st.st_mtime_ns}".encode()).hexdigest()[:20] + '"'  # sha1: a cache tag, not security
        last_modified = email.utils.formatdate(st.st_mtime, usegmt=True)
        common = {"ETag": etag, "Last-Modified": last_modified, "Accept-Ranges": "bytes"}

        if_none_match = self.headers.get("If-None-Match")
        if if_none_match and etag in [t.strip() for t in if_none_match.split(",")]:
            return self._send_not_modified(common)
        ims = self.headers.get("If-Modified-Since")
        if ims and not if_none_match:
            try:
                if int(st.st_mtime) <= email.utils.parsedate_to_datetime(ims).timestamp():
                    return self._send_not_modified(common)
            except (TypeError, ValueError):
                pass

        size, start, end, status = st.st_size, 0, st.st_size - 1, 200
        range_header = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if range_header and (not if_range or if_range in (etag, last_modified)):
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if not m or (not m.group(1) and not m.group(2)):
                return self._send_body(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:  # suffix range: the last N bytes
                start, end = max(0, size - int(m.group(2))), size - 1
            if start >= size or start > end:
                return self._send_body(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
            status = 206
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for key, value in common.items():
            self.send_header(key, value)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        self._status = status
        if method == "HEAD":
            return
        limit = length if truncate is None else int(length * truncate)
        with file.open("rb") as f:
            f.seek(start)
            remaining = limit
            while remaining > 0:
                block = f.read(min(CHUNK, remaining))
                if not block:
                    break
                self.wfile.write(block)
                self._sent += len(block)
                remaining -= len(block)
        if truncate is not None:
            self.wfile.flush()
            self.close_connection = True

    def _send_not_modified(self, headers: dict[str, str]) -> None:
        self.send_response(304)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self._status = 304


def _query(query: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}


def serve_forever(data_dir: str | os.PathLike, port: int = 8790, rate_limit: float | None = None) -> int:
    server = SandboxServer(data_dir, port=port, rate_limit=rate_limit).start()
    print(f"claimsflow sandbox serving {server.data_dir} on {server.url} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
