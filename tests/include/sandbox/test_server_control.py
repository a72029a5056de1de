"""The sandbox server driven over real HTTP on 127.0.0.1, as another process (a DAG run, `make demo`)
drives it: the /_sandbox/ control endpoints (health, faults, request log) and the download-site
semantics (HEAD, Range/416, If-None-Match/If-Range, traversal). test_sandbox.py covers the Python
API's faults (server.inject) and the encoded `%2e%2e` traversal."""

from __future__ import annotations

import email.utils
import http.client
import time

import pytest
import requests

from include.sandbox.server import FAULT_KINDS, SandboxServer

BUNDLE = "/nppes/NPPES_Data_Dissemination_November_2026_V2.zip"
INDEX = "/nppes/NPI_Files.html"
NPI_QUERY = {"version": "2.1", "number": "1234567893"}


def control(server: SandboxServer, method: str, what: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{server.url}/_sandbox/{what}", timeout=5, **kwargs)


def logged(server: SandboxServer, prefix: str = "") -> list[dict]:
    """The request log as another process sees it (the endpoint has no filter: filter here)."""
    answer = control(server, "GET", "requests")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    return [r for r in answer.json() if r["path"].startswith(prefix)]


def raw(server: SandboxServer, method: str, target: str, headers: dict[str, str] | None = None):
    """One request with the target sent exactly as written (requests/urllib3 would normalise `..`)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@pytest.fixture
def bundle_bytes(tiny_sandbox) -> bytes:
    return (tiny_sandbox / "site" / BUNDLE.lstrip("/")).read_bytes()


# ------------------------------------------------------------------------------------ control


def test_health_answers_and_is_not_logged(sandbox_server):
    answer = control(sandbox_server, "GET", "health")
    assert answer.status_code == 200 and answer.json() == {"ok": True}
    assert control(sandbox_server, "GET", "nothing-here").status_code == 404
    assert logged(sandbox_server) == []  # control traffic never shows in the request log


def test_429_fault_over_http_lasts_exactly_count_requests(sandbox_server):
    queued = control(
        sandbox_server, "POST", "faults", json={"kind": "429", "path": "/api/", "count": 2, "retry_after": 7}
    )
    assert queued.status_code == 201 and queued.json() == {"queued": True}
    api = sandbox_server.url + "/api/"
    # Another path does not consume the fault.
    assert requests.get(sandbox_server.url + INDEX, timeout=5).status_code == 200
    answers = [requests.get(api, params=NPI_QUERY, timeout=5) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert [a.headers.get("Retry-After") for a in answers[:2]] == ["7", "7"]
    assert "result_count" in answers[2].json()
    assert requests.get(api, params=NPI_QUERY, timeout=5).status_code == 200  # cleared for good
    api_log = logged(sandbox_server, "/api")
    assert [(r["status"], r["fault"]) for r in api_log] == [(429, "429"), (429, "429"), (200, None), (200, None)]


def test_truncate_fault_over_http_cuts_one_answer(sandbox_server, bundle_bytes):
    size = len(bundle_bytes)
    queued = control(sandbox_server, "POST", "faults", json={"kind": "truncate", "path": BUNDLE, "fraction": 0.25})
    assert queued.status_code == 201
    conn = http.client.HTTPConnection("127.0.0.1", sandbox_server.port, timeout=5)
    try:
        conn.request("GET", BUNDLE)
        response = conn.getresponse()
        assert response.status == 200 and int(response.headers["Content-Length"]) == size  # announces it all
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        assert cut.value.partial == bundle_bytes[: int(size * 0.25)]
    finally:
        conn.close()
    whole = requests.get(sandbox_server.url + BUNDLE, timeout=5)
    assert whole.status_code == 200 and whole.content == bundle_bytes
    assert [(r["fault"], r["bytes_sent"]) for r in logged(sandbox_server, BUNDLE)] == [
        ("truncate", int(size * 0.25)),
        (None, size),
    ]


def test_request_log_lists_filters_and_clears(sandbox_server, bundle_bytes):
    started = time.time()
    requests.get(sandbox_server.url + INDEX, timeout=5)
    requests.get(sandbox_server.url + BUNDLE, headers={"Range": "bytes=0-99"}, timeout=5)
    requests.head(sandbox_server.url + BUNDLE, timeout=5)
    requests.get(sandbox_server.url + "/nppes/missing.zip", timeout=5)
    requests.get(sandbox_server.url + "/api/", params=NPI_QUERY, timeout=5)
    finished = time.time()

    log = logged(sandbox_server)
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("GET", INDEX, 200),
        ("GET", BUNDLE, 206),
        ("HEAD", BUNDLE, 200),
        ("GET", "/nppes/missing.zip", 404),
        ("GET", "/api/", 200),
    ]
    assert set(log[0]) == {"ts", "client", "method", "path", "query", "status", "bytes_sent", "range", "fault"}
    assert all(started <= r["ts"] <= finished for r in log)
    assert [r["ts"] for r in log] == sorted(r["ts"] for r in log)
    assert {r["client"] for r in log} == {"127.0.0.1"}
    assert log[1]["range"] == "bytes=0-99" and log[1]["bytes_sent"] == 100
    assert log[2]["bytes_sent"] == 0  # HEAD: headers only
    assert log[4]["query"] == "version=2.1&number=1234567893"
    assert [r["path"] for r in logged(sandbox_server, "/nppes/")] == [INDEX, BUNDLE, BUNDLE, "/nppes/missing.zip"]

    cleared = control(sandbox_server, "DELETE", "requests")
    assert cleared.status_code == 204 and cleared.content == b""
    assert logged(sandbox_server) == []
    requests.get(sandbox_server.url + INDEX, timeout=5)
    assert [r["path"] for r in logged(sandbox_server)] == [INDEX]


def test_reset_drops_every_queued_fault(sandbox_server):
    for spec in (
        {"kind": "5xx", "path": "/nppes/", "status": 502, "count": 3},
        {"kind": "malformed_json", "path": "/api/"},
    ):
        assert control(sandbox_server, "POST", "faults", json=spec).status_code == 201
    assert requests.get(sandbox_server.url + INDEX, timeout=5).status_code == 502
    reset = control(sandbox_server, "DELETE", "faults")
    assert reset.status_code == 204
    assert requests.get(sandbox_server.url + INDEX, timeout=5).status_code == 200
    assert "result_count" in requests.get(sandbox_server.url + "/api/", params=NPI_QUERY, timeout=5).json()
    assert [r["fault"] for r in logged(sandbox_server)] == ["5xx", None, None]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"kind": "teapot", "path": "/api/"}', "unknown fault 'teapot'"),
        (b'{"path": "/api/"}', "JSON object"),
        (b'{"kind": "429", "count": 0}', "count must be at least 1"),
        (b'{"kind": "429", "count": "many"}', "many"),
        (b"not json", "Expecting value"),
        (b'["429"]', "JSON object"),
        (b'{"kind": "429", "path": 5}', "path"),
    ],
)
def test_bad_fault_specs_are_refused_with_400(sandbox_server, body, says):
    answer = control(sandbox_server, "POST", "faults", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and says in answer.json()["error"]
    if "unknown fault" in says:
        assert all(kind in answer.json()["error"] for kind in FAULT_KINDS)  # names the known kinds
    # Nothing was queued, and the server still answers normally.
    assert requests.get(sandbox_server.url + "/api/", params=NPI_QUERY, timeout=5).status_code == 200
    assert requests.get(sandbox_server.url + INDEX, timeout=5).status_code == 200


def test_a_request_body_nobody_reads_is_not_taken_for_the_next_request(sandbox_server):
    conn = http.client.HTTPConnection("127.0.0.1", sandbox_server.port, timeout=5)
    try:
        for method, target in (("POST", INDEX), ("POST", "/_sandbox/requests"), ("DELETE", INDEX)):
            conn.request(method, target, body=b"GET /phantom HTTP/1.1\r\nHost: x\r\n\r\n")
            response = conn.getresponse()
            response.read()
            assert response.status in (204, 404, 405)
            conn.request("GET", "/_sandbox/health")  # the same kept-alive connection
            health = conn.getresponse()
            assert health.status == 200 and health.read() == b'{"ok": true}'
    finally:
        conn.close()
    assert [(r["method"], r["path"], r["status"]) for r in logged(sandbox_server)] == [
        ("POST", INDEX, 405),
        ("DELETE", INDEX, 405),
    ]


# ------------------------------------------------------------------------------- download site


def test_head_gives_length_etag_and_last_modified(sandbox_server, tiny_sandbox, bundle_bytes):
    answer = requests.head(sandbox_server.url + BUNDLE, timeout=5)
    assert answer.status_code == 200 and answer.content == b""
    assert int(answer.headers["Content-Length"]) == len(bundle_bytes)
    assert answer.headers["ETag"].startswith('"') and answer.headers["ETag"].endswith('"')
    assert answer.headers["Accept-Ranges"] == "bytes"
    mtime = (tiny_sandbox / "site" / BUNDLE.lstrip("/")).stat().st_mtime
    assert email.utils.parsedate_to_datetime(answer.headers["Last-Modified"]).timestamp() == int(mtime)
    got = requests.get(sandbox_server.url + BUNDLE, timeout=5)
    assert (
        got.headers["ETag"] == answer.headers["ETag"]
        and got.headers["Last-Modified"] == answer.headers["Last-Modified"]
    )


def test_head_of_a_missing_file_sends_no_body(sandbox_server):
    """A HEAD answer carries no body, or the next answer on the kept-alive connection is garbage."""
    with requests.Session() as session:
        missing = session.head(sandbox_server.url + "/nppes/missing.zip", timeout=5)
        assert missing.status_code == 404
        after = session.get(sandbox_server.url + INDEX, timeout=5)
        assert after.status_code == 200 and after.text.lstrip().lower().startswith("<")
        limited = session.head(sandbox_server.url + "/api/nothing", timeout=5)
        assert limited.status_code == 404
        assert session.get(sandbox_server.url + "/api/", params=NPI_QUERY, timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=100-199", 100, 199),
        ("bytes=0-0", 0, 0),
        ("bytes=-50", -50, -1),
        ("bytes=1000-", 1000, -1),
        ("bytes=10-999999999", 10, -1),
    ],
)
def test_range_gives_206_with_the_right_bytes(sandbox_server, bundle_bytes, header, start, end):
    size = len(bundle_bytes)
    start, end = start % size, end % size
    answer = requests.get(sandbox_server.url + BUNDLE, headers={"Range": header}, timeout=5)
    assert answer.status_code == 206
    assert answer.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
    assert int(answer.headers["Content-Length"]) == end - start + 1
    assert answer.content == bundle_bytes[start : end + 1]


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{bigger}", "bytes=-0", "bytes=abc", "bytes=-"])
def test_unsatisfiable_range_gives_416(sandbox_server, bundle_bytes, header):
    size = len(bundle_bytes)
    answer = requests.get(
        sandbox_server.url + BUNDLE, headers={"Range": header.format(size=size, bigger=size + 10)}, timeout=5
    )
    assert answer.status_code == 416
    assert answer.headers["Content-Range"] == f"bytes */{size}"
    assert answer.content == b""


def test_conditional_requests(sandbox_server, bundle_bytes):
    url = sandbox_server.url + BUNDLE
    first = requests.get(url, timeout=5)
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    same = requests.get(url, headers={"If-None-Match": etag}, timeout=5)
    assert same.status_code == 304 and same.content == b"" and same.headers["ETag"] == etag
    listed = requests.get(url, headers={"If-None-Match": f'"other", {etag}'}, timeout=5)
    assert listed.status_code == 304
    other = requests.get(url, headers={"If-None-Match": '"something-else"'}, timeout=5)
    assert other.status_code == 200 and other.content == bundle_bytes
    assert requests.get(url, headers={"If-Modified-Since": last_modified}, timeout=5).status_code == 304
    # If-Range: a matching validator resumes, a stale one gets the whole (changed) file.
    resumed = requests.get(url, headers={"Range": "bytes=10-", "If-Range": etag}, timeout=5)
    assert resumed.status_code == 206 and resumed.content == bundle_bytes[10:]
    by_date = requests.get(url, headers={"Range": "bytes=10-", "If-Range": last_modified}, timeout=5)
    assert by_date.status_code == 206
    stale = requests.get(url, headers={"Range": "bytes=10-", "If-Range": '"stale"'}, timeout=5)
    assert stale.status_code == 200 and stale.content == bundle_bytes


@pytest.mark.parametrize(
    "target",
    [
        "/../manifest.json",
        "/nppes/../../manifest.json",
        "/nppes/..%2f..%2fmanifest.json",
        "/%2e%2e/manifest.json",
        "/nppes/%2E%2E%2F%2E%2E%2Fmanifest.json",
        "/..%2f..%2f..%2fetc/passwd",
        "/nppes/NPI_Files.html%00.zip",
    ],
)
def test_path_traversal_is_refused(sandbox_server, target):
    status, _, body = raw(sandbox_server, "GET", target)
    assert status == 404
    assert b'"seed"' not in body and b"root:" not in body  # neither manifest.json nor /etc/passwd leaked
    head_status, _, _ = raw(sandbox_server, "HEAD", target)
    assert head_status == 404


def test_symlink_out_of_the_site_is_refused(sandbox_copy):
    (sandbox_copy / "site" / "escape").symlink_to(sandbox_copy)  # site/escape -> the folder above site/
    (sandbox_copy / "site" / "inside").symlink_to(sandbox_copy / "site" / "nppes")
    with SandboxServer(sandbox_copy) as server:
        assert (sandbox_copy / "site" / "escape" / "manifest.json").is_file()
        assert requests.get(server.url + "/escape/manifest.json", timeout=5).status_code == 404
        assert requests.get(server.url + "/inside/NPI_Files.html", timeout=5).status_code == 200
