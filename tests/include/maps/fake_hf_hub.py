"""A fake Hugging Face Hub on 127.0.0.1: exactly the HTTP endpoints huggingface_hub (2.x) calls to create
a dataset repo and commit files to it, in the Hub's own request and answer formats, recording every
request it receives.

    with FakeHfHub(tokens={"hf_write": "write"}) as hub:
        hub.url                            # http://127.0.0.1:<port>: the endpoint to hand to HfApi
        ...
        hub.repo("me/data").files          # path -> bytes, as committed
        hub.commits, hub.requests          # what arrived

Endpoints (read from huggingface_hub's hf_api.py, _commit_api.py, lfs.py):

| call                          | request                                                          |
|-------------------------------|------------------------------------------------------------------|
| create_repo                   | POST /api/repos/create  {name, organization, type}; 409 if it exists |
| repo_info (create_repo's 401/403 fallback) | GET /api/datasets/{repo}/revision/{rev}             |
| get_paths_info                | POST /api/datasets/{repo}/paths-info/{rev}  (form: paths=..&expand=..) |
| create_commit: README check   | POST /api/validate-yaml  {content, repoType}                     |
| create_commit: upload modes   | POST /api/datasets/{repo}/preupload/{rev}  {files: [{path, sample, size}]} |
| create_commit: LFS files      | POST /datasets/{repo}.git/info/lfs/objects/batch (git-lfs batch API, basic transfer), |
|                               | PUT <presigned href> (no Authorization, like S3), POST <verify href> |
| create_commit: the commit     | POST /api/datasets/{repo}/commit/{rev}  NDJSON: header, file (inline base64), lfsFile |
| a file's content              | GET /datasets/{repo}/resolve/{rev}/{path}                        |
| create_commit: Xet upload     | GET /api/datasets/{repo}/xet-write-token/{rev} (the Xet token and CAS URL, as the Hub |
|                               | answers it), then hf_xet's calls to that CAS URL: {url}/_cas/... and /v1/telemetry,   |
|                               | all refused (404): the CAS protocol is not faked                                      |

Which files are LFS is the preupload answer's decision: like the real Hub, a path matching one of
`lfs_patterns` (the real Hub's default .gitattributes lists *.parquet among others) or a file of 10 MB or
more is "lfs", everything else "regular" (its content travels base64 in the commit). The default
`lfs_patterns=()` answers "regular" for the small test files. With hf_xet installed (a dependency of
huggingface_hub) and `huggingface_hub.constants.HF_HUB_DISABLE_XET` false, the client uploads LFS files
through Xet storage: this fake hands out a Xet write token (recorded in `xet_tokens`; the CAS routes
accept only those, never a Hub token) and refuses every CAS call, so such an upload fails before its
commit. hf_upload.upload_outputs sets the flag (use_xet=False, its default) so that LFS files take the
LFS batch API below.

Errors come as the Hub sends them: JSON {"error": ...} plus X-Error-Code / X-Error-Message headers
(RepoNotFound, RevisionNotFound, EntryNotFound). A request without a known token gets 401, a write with
a read token 403. `fail(status, route=...)` queues a failure for a route (e.g. 500 on "commit").
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub refuses regular (non-LFS) files of 10 MB or more
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
ROUTES = [  # (method, route name, path regex)
    ("POST", "create", re.compile(r"^/api/repos/create$")),
    ("POST", "validate_yaml", re.compile(r"^/api/validate-yaml$")),
    ("GET", "repo_info", re.compile(rf"^/api/datasets/{REPO}/revision/(?P<rev>[^/]+)$")),
    ("POST", "paths_info", re.compile(rf"^/api/datasets/{REPO}/paths-info/(?P<rev>[^/]+)$")),
    ("POST", "preupload", re.compile(rf"^/api/datasets/{REPO}/preupload/(?P<rev>[^/]+)$")),
    ("POST", "commit", re.compile(rf"^/api/datasets/{REPO}/commit/(?P<rev>[^/]+)$")),
    ("GET", "resolve", re.compile(rf"^/datasets/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")),
    ("POST", "lfs_batch", re.compile(rf"^/datasets/{REPO}\.git/info/lfs/objects/batch$")),
    ("POST", "lfs_verify", re.compile(rf"^/datasets/{REPO}\.git/info/lfs/objects/verify$")),
    ("PUT", "s3_put", re.compile(r"^/_s3/(?P<oid>[0-9a-f]{64})$")),
    ("GET", "xet_write_token", re.compile(rf"^/api/datasets/{REPO}/xet-write-token/(?P<rev>[^/]+)$")),
    *((m, "xet_cas", re.compile(r"^/_cas/(?P<call>.*)$")) for m in ("GET", "HEAD", "POST", "PUT")),
    ("POST", "xet_telemetry", re.compile(r"^/v1/telemetry$")),  # hf_xet's, sent to the CAS URL's host
]
WRITE_ROUTES = {"create", "preupload", "commit", "lfs_batch", "lfs_verify", "xet_write_token"}
# a presigned URL: the signature is the credential; the CAS checks the Xet token itself
UNAUTHENTICATED_ROUTES = {"s3_put", "xet_cas", "xet_telemetry"}
XET_TOKEN_TTL = 3600


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's object id


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class StoredFile:
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def paths_info(self, path: str) -> dict[str, Any]:
        """The Hub's paths-info entry: the git oid is that of the pointer file for LFS files."""
        if not self.lfs:
            return {"type": "file", "oid": git_blob_sha1(self.content), "size": len(self.content), "path": path}
        pointer = lfs_pointer(self.sha256, len(self.content))
        return {"type": "file", "oid": git_blob_sha1(pointer), "size": len(self.content), "path": path,
                "lfs": {"oid": self.sha256, "size": len(self.content), "pointerSize": len(pointer)}}


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, StoredFile] = field(default_factory=dict)
    head: str = ""

    def content(self, path: str) -> bytes:
        return self.files[path].content


@dataclass
class Commit:
    repo_id: str
    revision: str
    header: dict[str, Any]
    files: dict[str, bytes]  # path -> content, inline (regular) and LFS alike
    lfs_paths: list[str]
    oid: str


@dataclass
class Request:
    method: str
    route: str | None
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int = 0


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class FakeHfHub:
    def __init__(self, tokens: dict[str, str] | None = None, *, lfs_patterns: tuple[str, ...] = (),
                 username: str = "claimsflow-bot") -> None:
        self.tokens = dict(tokens or {})  # token -> "write" | "read"
        self.lfs_patterns = lfs_patterns
        self.username = username
        self.repos: dict[str, FakeRepo] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content (the "S3" bucket)
        self.commits: list[Commit] = []
        self.requests: list[Request] = []
        self.xet_tokens: list[str] = []  # the Xet access tokens handed out
        self._faults: list[tuple[str, int, str]] = []
        self._lock = threading.RLock()
        self._commit_counter = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- test API -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHfHub:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hf-hub", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def create(self, repo_id: str, files: dict[str, bytes] | None = None) -> FakeRepo:
        """A repo as the Hub creates it (an initial commit with .gitattributes), plus `files`."""
        with self._lock:
            repo = FakeRepo(repo_id, {".gitattributes": StoredFile(GITATTRIBUTES, lfs=False)})
            for path, data in (files or {}).items():
                repo.files[path] = StoredFile(data, lfs=self._is_lfs(path, len(data)))
                if repo.files[path].lfs:
                    self.lfs_objects[hashlib.sha256(data).hexdigest()] = data
            repo.head = self._next_oid()
            self.repos[repo_id] = repo
            return repo

    def repo(self, repo_id: str) -> FakeRepo:
        return self.repos[repo_id]

    def fail(self, status: int, *, route: str, message: str = "Internal Error - We're working hard to fix this "
             "as soon as possible!") -> None:
        """Answer the next request of `route` with `status`. `{authorization}` in the message is replaced by
        the request's Authorization header (a server that echoes credentials back)."""
        with self._lock:
            self._faults.append((route, status, message))

    def routes(self) -> list[str | None]:
        return [r.route for r in self.requests]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- the Hub -------------------------------------------------------------------------------------

    def _next_oid(self) -> str:
        self._commit_counter += 1
        return hashlib.sha1(f"commit-{self._commit_counter}".encode()).hexdigest()  # a fake commit id

    def _is_lfs(self, path: str, size: int) -> bool:
        return size >= LFS_THRESHOLD or any(fnmatch.fnmatch(path, p) for p in self.lfs_patterns)

    def _repo(self, repo_id: str, rev: str) -> FakeRepo:
        repo = self.repos.get(repo_id)
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        if unquote(rev) != "main":
            raise HubError(404, f"Invalid rev id: {unquote(rev)}", "RevisionNotFound")
        return repo

    def _authorize(self, route: str, headers: dict[str, str]) -> None:
        if route in UNAUTHENTICATED_ROUTES:
            return
        auth = headers.get("authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        scope = self.tokens.get(token or "")
        if scope is None:
            raise HubError(401, "Invalid credentials in Authorization header" if token else
                           "You must be authenticated to access this resource")
        if route in WRITE_ROUTES and scope != "write":
            raise HubError(403, "You don't have the rights to write to this repository with this token")

    def handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        """One request: (status, headers, body). Recorded whatever the outcome."""
        route, match = None, None
        for m, name, pattern in ROUTES:
            if m == method and (match := pattern.match(path)):
                route = name
                break
        record = Request(method, route, path, query, headers, body)
        with self._lock:
            self.requests.append(record)
        try:
            if route is None:
                raise HubError(404, "Sorry, we can't find the page you are looking for.")
            with self._lock:
                fault = next((f for f in self._faults if f[0] == route), None)
                if fault:
                    self._faults.remove(fault)
            if fault:
                raise HubError(fault[1], fault[2].replace("{authorization}", headers.get("authorization", "")))
            self._authorize(route, headers)
            with self._lock:
                status, out_headers, out = getattr(self, f"_{route}")(match.groupdict(), query, headers, body)
        except HubError as err:
            status = err.status
            out_headers = {"Content-Type": "application/json", "X-Error-Message": err.message}
            if err.code:
                out_headers["X-Error-Code"] = err.code
            out = json.dumps({"error": err.message}).encode()
        record.status = status
        return status, out_headers, out

    @staticmethod
    def _json(status: int, payload: Any) -> tuple[int, dict, bytes]:
        return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()

    def _create(self, _: dict, query: str, headers: dict, body: bytes):
        spec = json.loads(body)
        if spec.get("type") != "dataset":
            raise HubError(400, f"this fake hub only holds dataset repos, got type {spec.get('type')!r}")
        repo_id = f"{spec.get('organization') or self.username}/{spec['name']}"
        url = f"{self.url}/datasets/{repo_id}"
        if repo_id in self.repos:
            return self._json(409, {"error": "You already created this dataset repo", "url": url})
        self.create(repo_id)
        return self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _repo_info(self, g: dict, query: str, headers: dict, body: bytes):
        repo = self._repo(g["repo"], g["rev"])
        return self._json(200, {"id": repo.repo_id, "sha": repo.head, "private": False,
                                "siblings": [{"rfilename": p} for p in sorted(repo.files)]})

    def _paths_info(self, g: dict, query: str, headers: dict, body: bytes):
        repo = self._repo(g["repo"], g["rev"])
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise HubError(400, "paths-info expects a form body")
        paths = parse_qs(body.decode(), keep_blank_values=True).get("paths", [])
        return self._json(200, [repo.files[p].paths_info(p) for p in paths if p in repo.files])

    def _validate_yaml(self, _: dict, query: str, headers: dict, body: bytes):
        content = json.loads(body)["content"]
        m = re.match(r"^---\n(.*?)\n---\n", content, re.S)
        if m is None:
            return self._json(200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata"}]})
        try:
            meta = yaml.safe_load(m.group(1)) or {}
        except yaml.YAMLError as exc:
            return self._json(400, {"errors": [{"message": f"invalid YAML: {exc}"}], "warnings": []})
        errors = []
        for entry in meta.get("configs", []):
            if not isinstance(entry, dict) or not entry.get("config_name") or not entry.get("data_files"):
                errors.append({"message": f"configs entry needs config_name and data_files: {entry!r}"})
        return self._json(400 if errors else 200, {"errors": errors, "warnings": []})

    def _preupload(self, g: dict, query: str, headers: dict, body: bytes):
        repo = self._repo(g["repo"], g["rev"])
        out = []
        for f in json.loads(body)["files"]:
            base64.b64decode(f["sample"], validate=True)  # a malformed sample is a 400 on the Hub too
            mode = "lfs" if self._is_lfs(f["path"], f["size"]) else "regular"
            existing = repo.files.get(f["path"])
            # the remote oid the client compares with its own: sha256 for LFS, the git blob sha1 otherwise
            oid = None if existing is None else (existing.sha256 if existing.lfs else git_blob_sha1(existing.content))
            out.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return self._json(200, {"files": out, "commitOid": repo.head})

    def _lfs_batch(self, g: dict, query: str, headers: dict, body: bytes):
        self._repo(g["repo"], "main")
        if headers.get("accept") != "application/vnd.git-lfs+json":
            raise HubError(406, "the LFS batch API wants Accept: application/vnd.git-lfs+json")
        spec = json.loads(body)
        if spec.get("operation") != "upload" or "basic" not in spec.get("transfers", []):
            raise HubError(422, "only the basic upload transfer is implemented")
        objects = []
        for obj in spec["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs_objects:  # already stored: no actions, the client skips it
                entry["actions"] = {
                    "upload": {"href": f"{self.url}/_s3/{obj['oid']}?X-Amz-Signature=fake", "expires_in": 900},
                    "verify": {"href": f"{self.url}/datasets/{g['repo']}.git/info/lfs/objects/verify"},
                }
            objects.append(entry)
        return self._json(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _s3_put(self, g: dict, query: str, headers: dict, body: bytes):
        if hashlib.sha256(body).hexdigest() != g["oid"]:
            raise HubError(400, "content does not match its sha256")
        self.lfs_objects[g["oid"]] = body
        return 200, {"ETag": f'"{hashlib.md5(body).hexdigest()}"'}, b""  # S3's ETag

    def _lfs_verify(self, g: dict, query: str, headers: dict, body: bytes):
        spec = json.loads(body)
        stored = self.lfs_objects.get(spec["oid"])
        if stored is None or len(stored) != spec["size"]:
            raise HubError(404, f"LFS object {spec['oid']} not found")
        return self._json(200, {"success": True})

    def _commit(self, g: dict, query: str, headers: dict, body: bytes):
        repo = self._repo(g["repo"], g["rev"])
        if headers.get("content-type") != "application/x-ndjson":
            raise HubError(400, "the commit API wants application/x-ndjson")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header" or not lines[0]["value"].get("summary"):
            raise HubError(400, "the first line must be the header with a summary")
        files: dict[str, StoredFile] = {}
        for item in lines[1:]:
            value = item["value"]
            if item["key"] == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"unsupported encoding {value.get('encoding')!r}")
                data = base64.b64decode(value["content"], validate=True)
                if self._is_lfs(value["path"], len(data)):
                    raise HubError(400, f"{value['path']} must be pushed with LFS")
                files[value["path"]] = StoredFile(data, lfs=False)
            elif item["key"] == "lfsFile":
                data = self.lfs_objects.get(value["oid"]) if value.get("algo") == "sha256" else None
                if data is None or len(data) != value.get("size", len(data)):
                    raise HubError(400, "Your push was rejected because an LFS pointer points to a file that does "
                                        f"not exist: {value['path']}")
                files[value["path"]] = StoredFile(data, lfs=True)
            else:
                raise HubError(400, f"unexpected commit operation {item['key']!r}")
        parent = lines[0]["value"].get("parentCommit")
        if parent and parent != repo.head:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        repo.files.update(files)
        repo.head = self._next_oid()
        self.commits.append(Commit(repo.repo_id, unquote(g["rev"]), lines[0]["value"],
                                   {p: f.content for p, f in files.items()},
                                   [p for p, f in files.items() if f.lfs], repo.head))
        return self._json(200, {"success": True, "commitOid": repo.head, "hookOutput": "",
                                "commitUrl": f"{self.url}/datasets/{repo.repo_id}/commit/{repo.head}"})

    def _resolve(self, g: dict, query: str, headers: dict, body: bytes):
        repo = self._repo(g["repo"], g["rev"])
        path = unquote(g["path"])
        stored = repo.files.get(path)
        if stored is None:
            raise HubError(404, "Entry not found", "EntryNotFound")
        return 200, {"Content-Type": "application/octet-stream", "X-Repo-Commit": repo.head,
                     "ETag": f'"{git_blob_sha1(stored.content)}"'}, stored.content

    def _xet_write_token(self, g: dict, query: str, headers: dict, body: bytes):
        """The Hub's answer: a short-lived CAS token and the CAS URL (here, this server's /_cas)."""
        self._repo(g["repo"], g["rev"])
        seed = f"{g['repo']}-{len(self.xet_tokens)}".encode()
        token = "xet_" + hashlib.sha256(seed).hexdigest()[:32]  # a fake token
        self.xet_tokens.append(token)
        return self._json(200, {"accessToken": token, "exp": int(time.time()) + XET_TOKEN_TTL,
                                "casUrl": f"{self.url}/_cas"})

    def _xet_cas(self, g: dict, query: str, headers: dict, body: bytes):
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[len("Bearer "):] not in self.xet_tokens:
            raise HubError(401, "the CAS wants a Xet access token from xet-write-token")
        raise HubError(404, f"this fake hub does not implement the Xet CAS protocol (/{g['call']})")

    def _xet_telemetry(self, g: dict, query: str, headers: dict, body: bytes):
        raise HubError(404, "this fake hub does not implement hf_xet's telemetry")

    # --- HTTP ----------------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the Hub; every answer has a Content-Length

            def log_message(self, *args: Any) -> None:  # quiet: the test reads hub.requests
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, out_headers, out = hub.handle(self.command, parts.path, parts.query, headers, self._body())
                self.send_response(status)
                for k, v in out_headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_HEAD = _serve

        return Handler
