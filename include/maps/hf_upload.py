"""The optional upload of the maps' outputs to a Hugging Face dataset repo (the seed's `--hf-upload-*`).

    upload_outputs(outputs.OutputPaths(root), repo_id="me/medicaid-maps", token=token,
                   upload_npi=True, upload_hcpcs=True)

What goes where (one config per file, the split named like the config, so that
`load_dataset(repo, "npi")["npi"]` works as in the seed):

| flag                   | local file                              | path in repo (default)                  | config          |
|------------------------|-----------------------------------------|-----------------------------------------|-----------------|
| `upload_npi`           | output/npi.parquet                      | npi/npi.parquet (`npi_path_in_repo`)    | `npi`           |
| `upload_hcpcs`         | output/hcpcs.parquet                    | hcpcs/hcpcs.parquet (`hcpcs_path_in_repo`) | `hcpcs`      |
| `upload_npi_mapping`   | mappings/npi/npi_provider_mapping.csv   | the same relative path                  | `npi_mapping`   |
| `upload_hcpcs_mapping` | mappings/hcpcs/hcpcs_code_mapping.csv   | the same relative path                  | `hcpcs_mapping` |

The two mapping CSVs are two configs, not two splits of one "mappings" config: splits of a config must
share one schema, and these two do not.

The dataset repo is created if missing (public, the Hub's default), and everything selected goes in ONE
commit together with the dataset card `README.md`. The card's YAML `configs:` is merged: entries of other
configs already in the card (the seed's `spending`, or a split uploaded by an earlier run) are kept, ours
are replaced; the card's text is kept too, only the section between the claimsflow markers is (re)written.

Idempotent: before committing, the remote files are compared with the local ones (`paths-info`: the
sha256 of LFS files, the git blob sha1 of regular files). Unchanged files are left out of the commit and
reported `unchanged`; when nothing changed (files and card), no commit is made at all — a rerun neither
fails nor adds empty commits. Files are never deleted from the repo (a changed `*_path_in_repo` leaves
the old file where it was).

The token is only handed to huggingface_hub (Authorization header); it is not logged, not returned, and
scrubbed from the errors raised here, which name the repo, the step and the HTTP status.

LFS files (the parquets: the Hub's .gitattributes marks *.parquet as LFS) go through the git-LFS batch API
by default (`use_xet=False`), the path the tests cover end to end against a local fake Hub
(tests/include/maps/fake_hf_hub.py). huggingface_hub uploads them through Xet storage instead whenever
hf_xet (one of its dependencies) is importable, unless `huggingface_hub.constants.HF_HUB_DISABLE_XET` is
true. That constant is read from the environment variable once, when huggingface_hub is imported, and
looked up at every upload (`is_xet_available()`), so setting the variable at run time changes nothing:
upload_outputs sets the constant itself for the duration of the upload and restores it afterwards, also
on errors (one upload at a time per process, under a lock; other huggingface_hub calls made in that
process meanwhile see the same flag). `use_xet` decides whatever HF_HUB_DISABLE_XET says in the worker's
environment: `use_xet=True` sets the constant false and lets hf_xet upload through the
Hub's Xet token and CAS server: that path is NOT covered by the tests beyond its first requests (the fake
Hub hands out a Xet token and refuses the CAS calls, a protocol it does not speak), and is logged as such.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import httpx2
import yaml
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import (
    build_hf_headers,
    get_session,
    hf_raise_for_status,
    is_package_available,
    validate_repo_id,
)

from include.common.errors import ConfigurationError, HttpError
from include.maps.outputs import OutputPaths

log = logging.getLogger("claimsflow.maps.hf_upload")

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_NPI_PATH = "npi/npi.parquet"
DEFAULT_HCPCS_PATH = "hcpcs/hcpcs.parquet"
NPI_MAPPING_PATH = "mappings/npi/npi_provider_mapping.csv"
HCPCS_MAPPING_PATH = "mappings/hcpcs/hcpcs_code_mapping.csv"
CARD_PATH = "README.md"
REVISION = "main"
CONFIG_ORDER = ("npi", "hcpcs", "npi_mapping", "hcpcs_mapping")
DESCRIPTIONS = {
    "npi": "one row per NPI of the spending data: the NPI Registry API v2.1 answer (NPPES bulk preload or API), "
           "nested fields as JSON text, the full payload in `response_json`",
    "hcpcs": "one row per HCPCS code of the spending data: the NLM Clinical Tables HCPCS v3 answer "
             "(or the local fallback), the full payload in `response_json`",
    "npi_mapping": "flat NPI → provider name, type, taxonomy and practice location, with the resolution status",
    "hcpcs_mapping": "flat HCPCS code → short/long description and dates, with the resolution status",
}
BEGIN, END = "<!-- claimsflow:begin -->", "<!-- claimsflow:end -->"
FRONT_MATTER = re.compile(r"\A---\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
XET_UPLOAD_FUNCTION = "_upload_xet_files"  # huggingface_hub._commit_api: where hf_xet's errors come from
XET_HTTP_STATUS = re.compile(r"\((\d{3})(?: [^)]*)?\)")  # hf_xet: "... client error (404 Not Found), domain: ..."
_XET_FLAG_LOCK = threading.Lock()


class HuggingFaceUploadError(HttpError):
    """The Hub refused or failed a step of the upload (names the repo, the step and the status)."""


@dataclass(frozen=True)
class Selected:
    config: str
    local: Path
    path_in_repo: str


def _path_in_repo(value: str, what: str) -> str:
    path = (value or "").strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    parts = PurePosixPath(path).parts
    if not path or path.startswith("/") or ".." in parts or path.endswith("/"):
        raise ConfigurationError(f"{what} must be a relative file path inside the repo, got {value!r}")
    if path == CARD_PATH:
        raise ConfigurationError(f"{what} may not be {CARD_PATH}: that is the dataset card")
    return path


def select(paths: OutputPaths, *, upload_npi: bool = False, upload_hcpcs: bool = False,
           upload_npi_mapping: bool = False, upload_hcpcs_mapping: bool = False,
           npi_path_in_repo: str = DEFAULT_NPI_PATH, hcpcs_path_in_repo: str = DEFAULT_HCPCS_PATH) -> list[Selected]:
    """The files the flags ask for, checked: each exists locally, each has its own path in the repo."""
    wanted = [
        (upload_npi, "npi", paths.npi_parquet, lambda: _path_in_repo(npi_path_in_repo, "npi_path_in_repo")),
        (upload_hcpcs, "hcpcs", paths.hcpcs_parquet, lambda: _path_in_repo(hcpcs_path_in_repo, "hcpcs_path_in_repo")),
        (upload_npi_mapping, "npi_mapping", paths.npi_mapping, lambda: NPI_MAPPING_PATH),
        (upload_hcpcs_mapping, "hcpcs_mapping", paths.hcpcs_mapping, lambda: HCPCS_MAPPING_PATH),
    ]
    selected = [Selected(config, Path(local), target()) for on, config, local, target in wanted if on]
    missing = [str(s.local) for s in selected if not s.local.is_file()]
    if missing:
        raise ConfigurationError(f"cannot upload outputs that do not exist (run the maps first): {', '.join(missing)}")
    targets = [s.path_in_repo for s in selected]
    if len(set(targets)) != len(targets):
        raise ConfigurationError(f"two uploads would go to the same path in the repo: {targets}")
    return selected


def _digests(path: Path) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file, in one streamed read."""
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()  # git's object id, not a security hash
    sha1.update(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha256.update(chunk)
            sha1.update(chunk)
    return sha256.hexdigest(), sha1.hexdigest()


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's object id


def _same_as_remote(remote: Any, sha256: str, blob_sha1: str) -> bool:
    """LFS files are compared by sha256 (the Hub keeps it in `lfs`), regular files by git blob id."""
    if remote is None:
        return False
    lfs = getattr(remote, "lfs", None)
    return lfs.sha256 == sha256 if lfs else remote.blob_id == blob_sha1


def _split_card(text: str) -> tuple[dict[str, Any], str, str]:
    """(metadata, front matter text, body) of a dataset card."""
    m = FRONT_MATTER.match(text)
    if not m:
        return {}, "", text
    meta = yaml.safe_load(m.group(1)) or {}
    if not isinstance(meta, dict):
        raise ValueError("the YAML header is not a mapping")
    return meta, m.group(0), text[m.end():]


def _config_entry(s: Selected) -> dict[str, Any]:
    return {"config_name": s.config, "data_files": [{"split": s.config, "path": s.path_in_repo}]}


def _section(repo_id: str, configs: list[dict[str, Any]]) -> str:
    ours = {c["config_name"]: c for c in configs if c.get("config_name") in DESCRIPTIONS}
    lines = [BEGIN, "## NPI and HCPCS maps (claimsflow)", "",
             "Every NPI and HCPCS code of the CMS Medicaid Provider Spending data, resolved against NPPES, the NPI "
             "Registry API and the NLM Clinical Tables HCPCS API; written by the `claimsflow_maps` Airflow DAG.", "",
             "| config | file | contents |", "|---|---|---|"]
    for name in CONFIG_ORDER:
        if name in ours:
            files = ", ".join(f"`{f['path']}`" for f in ours[name].get("data_files", []) if isinstance(f, dict))
            lines.append(f"| `{name}` | {files} | {DESCRIPTIONS[name]} |")
    lines += ["", "```python", "from datasets import load_dataset", ""]
    lines += [f'{name} = load_dataset("{repo_id}", "{name}")["{name}"]' for name in CONFIG_ORDER if name in ours]
    lines += ["```", END]
    return "\n".join(lines) + "\n"


def build_card(repo_id: str, selected: list[Selected], existing: str | None) -> str:
    """The dataset card: `existing` (the remote README.md, if any) with our configs merged in."""
    meta, front, body = _split_card(existing) if existing is not None else ({}, "", None)
    configs = [c for c in meta.get("configs") or [] if isinstance(c, dict)]
    mine = {s.config: _config_entry(s) for s in selected}
    merged = [mine.pop(c.get("config_name"), c) for c in configs]  # replaced in place, others kept
    merged += [mine[name] for name in CONFIG_ORDER if name in mine]
    new_meta = {**meta, "configs": merged}
    # an unchanged header keeps its exact text: re-dumping a person's YAML must not count as a change
    header = front if new_meta == meta and front else "---\n" + yaml.safe_dump(
        new_meta, sort_keys=False, allow_unicode=True, default_flow_style=False) + "---\n"
    section = _section(repo_id, merged)
    if body is None:
        body = f"\n# {repo_id}\n\n{section}"
    elif BEGIN in body and END in body:
        start, end = body.index(BEGIN), body.index(END) + len(END)
        body = body[:start] + section.rstrip("\n") + body[end:]
    else:
        body = body.rstrip("\n") + ("\n\n" if body.strip() else "\n") + section
    return header + body


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


@contextmanager
def _xet_switch(use_xet: bool) -> Iterator[None]:
    """huggingface_hub's HF_HUB_DISABLE_XET set to `not use_xet` for the block, the previous value restored
    after it (also on errors). The module constant, not the environment variable: huggingface_hub reads the
    variable once at import and the constant at every upload."""
    with _XET_FLAG_LOCK:
        previous = hf_constants.HF_HUB_DISABLE_XET
        hf_constants.HF_HUB_DISABLE_XET = not use_xet
        try:
            yield
        finally:
            hf_constants.HF_HUB_DISABLE_XET = previous


def _raised_in_xet_upload(exc: BaseException) -> bool:
    """Whether the error came out of huggingface_hub's Xet upload (hf_xet raises plain ConnectionError,
    RuntimeError... from Rust, so the traceback, not the type, tells)."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == XET_UPLOAD_FUNCTION:
            return True
        tb = tb.tb_next
    return False


@contextmanager
def _hub_step(repo_id: str, step: str, endpoint: str, token: str) -> Iterator[None]:
    """Hub failures as one error naming the repo and the step, the token scrubbed. Raised `from None`:
    the original error carries the request (and its Authorization header) along."""
    try:
        yield
    except Exception as exc:  # the HTTP error may be wrapped (LFS uploads raise RuntimeError from it)
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, (HfHubHTTPError, httpx2.TransportError)):
            cause = cause.__cause__
        if cause is None:
            if not _raised_in_xet_upload(exc):
                raise
            said = str(exc).strip()
            m = XET_HTTP_STATUS.search(said)
            status = int(m.group(1)) if m else None
            message = (f"Hugging Face dataset {repo_id}: {step} failed in the Xet storage upload (hf_xet, "
                       f"{type(exc).__name__}" + (f", HTTP {status}" if status else "") + f": {said}); "
                       "the Xet path (hf_use_xet) is not covered by claimsflow's tests, without it the files go "
                       "through the LFS batch API")
            raise HuggingFaceUploadError(_scrub(message, token), status=status) from None
        if isinstance(cause, httpx2.TransportError):
            message = f"Hugging Face dataset {repo_id}: {step} failed: cannot reach {endpoint} ({type(cause).__name__})"
            raise HuggingFaceUploadError(_scrub(message, token)) from None
        status = cause.response.status_code if cause.response is not None else None
        hint = {401: "the token of connection `huggingface` is missing, invalid or expired",
                403: "the token of connection `huggingface` may not write to this repo (a write token is needed)",
                404: "the repo or revision does not exist"}.get(status or 0, "")
        if status is not None and status >= 500:
            hint = "the Hub failed; the task's retries run it again"
        said = (cause.server_message or "").strip()
        message = (f"Hugging Face dataset {repo_id}: {step} failed with HTTP {status}"
                   + (f" ({hint})" if hint else "") + (f"; the Hub said: {said}" if said else "")
                   + (f"; request id {cause.request_id}" if cause.request_id else ""))
        raise HuggingFaceUploadError(_scrub(message, token), status=status) from None


def _remote_card(api: HfApi, repo_id: str, token: str) -> str:
    url = f"{api.endpoint}/datasets/{repo_id}/resolve/{REVISION}/{CARD_PATH}"
    response = get_session().get(url, headers=build_hf_headers(token=token, library_name="claimsflow"),
                                 follow_redirects=True)
    hf_raise_for_status(response)
    return response.content.decode("utf-8")


def upload_outputs(paths: OutputPaths, *, repo_id: str, token: str, endpoint: str = DEFAULT_ENDPOINT,
                   upload_npi: bool = False, upload_hcpcs: bool = False, upload_npi_mapping: bool = False,
                   upload_hcpcs_mapping: bool = False, npi_path_in_repo: str = DEFAULT_NPI_PATH,
                   hcpcs_path_in_repo: str = DEFAULT_HCPCS_PATH, use_xet: bool = False) -> list[dict[str, Any]]:
    """Upload the selected outputs and the card in one commit; one dict per file (the card last), each with
    `status` "uploaded" or "unchanged". Nothing selected: nothing is sent, [] is returned.

    `use_xet`: False (default, the tested path) sends LFS files through the LFS batch API; True lets
    hf_xet send them through Xet storage (not covered by the tests; see the module docstring)."""
    selected = select(paths, upload_npi=upload_npi, upload_hcpcs=upload_hcpcs, upload_npi_mapping=upload_npi_mapping,
                      upload_hcpcs_mapping=upload_hcpcs_mapping, npi_path_in_repo=npi_path_in_repo,
                      hcpcs_path_in_repo=hcpcs_path_in_repo)
    if not selected:
        return []
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ConfigurationError(f"hf_repo_id {repo_id!r} is not a Hugging Face repo id: {exc}") from None
    if "/" not in repo_id:
        raise ConfigurationError(f"hf_repo_id must be '<user or organization>/<name>', got {repo_id!r}")
    if not token:
        # never fall back to a token stored on the worker (HF_TOKEN, ~/.cache/huggingface): be explicit
        raise ConfigurationError("connection `huggingface` has no password: set it to a Hugging Face write token")
    endpoint = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
    if use_xet and is_package_available("hf_xet"):
        log.warning("Hugging Face dataset %s: use_xet is on, LFS files go through Xet storage (hf_xet %s); this "
                    "path is NOT covered by claimsflow's tests (they cover the LFS batch API, use_xet off)",
                    repo_id, _version("hf_xet"))
    elif use_xet:
        log.warning("Hugging Face dataset %s: use_xet is on but hf_xet is not installed: LFS files go through "
                    "the LFS batch API", repo_id)
    with _xet_switch(use_xet):
        return _upload(selected, repo_id=repo_id, token=token, endpoint=endpoint)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def _upload(selected: list[Selected], *, repo_id: str, token: str, endpoint: str) -> list[dict[str, Any]]:
    api = HfApi(endpoint=endpoint, token=token, library_name="claimsflow")

    def step(what: str):
        return _hub_step(repo_id, what, endpoint, token)

    with step("creating the dataset repo"):
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    digests = {s.path_in_repo: _digests(s.local) for s in selected}
    with step("reading the remote files' hashes"):
        remote = {f.path: f for f in api.get_paths_info(repo_id, [*digests, CARD_PATH], repo_type="dataset",
                                                         revision=REVISION)}
    existing_card = None
    if CARD_PATH in remote:
        with step("reading the dataset card"):
            existing_card = _remote_card(api, repo_id, token)
    try:
        card = build_card(repo_id, selected, existing_card).encode("utf-8")
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"Hugging Face dataset {repo_id}: the existing {CARD_PATH} has a YAML header that "
                                 f"cannot be read ({exc}); fix or remove it") from None

    results: list[dict[str, Any]] = []
    operations = []
    for s in selected:
        sha256, blob_sha1 = digests[s.path_in_repo]
        unchanged = _same_as_remote(remote.get(s.path_in_repo), sha256, blob_sha1)
        if not unchanged:
            operations.append(CommitOperationAdd(path_in_repo=s.path_in_repo, path_or_fileobj=str(s.local)))
        results.append({"config": s.config, "path_in_repo": s.path_in_repo, "local_path": str(s.local),
                        "size": s.local.stat().st_size, "sha256": sha256,
                        "status": "unchanged" if unchanged else "uploaded"})
    card_unchanged = _same_as_remote(remote.get(CARD_PATH), hashlib.sha256(card).hexdigest(), _git_blob_sha1(card))
    if not card_unchanged:
        operations.append(CommitOperationAdd(path_in_repo=CARD_PATH, path_or_fileobj=card))
    results.append({"config": None, "path_in_repo": CARD_PATH, "local_path": None, "size": len(card),
                    "sha256": hashlib.sha256(card).hexdigest(), "status": "unchanged" if card_unchanged else "uploaded"})

    commit = None
    if operations:
        names = ", ".join(op.path_in_repo for op in operations)
        log.info("Hugging Face dataset %s: committing %d file(s) to %s: %s", repo_id, len(operations), endpoint, names)
        with step("committing the files"):
            info = api.create_commit(repo_id, operations, repo_type="dataset", revision=REVISION,
                                     commit_message=f"claimsflow maps: {names}")
        commit = info.oid
    else:
        log.info("Hugging Face dataset %s: every file equals the remote one, no commit", repo_id)
    for r in results:
        r.update(repo_id=repo_id, commit=commit if r["status"] == "uploaded" else None,
                 url=f"{endpoint}/datasets/{repo_id}/blob/{REVISION}/{r['path_in_repo']}")
    return results
