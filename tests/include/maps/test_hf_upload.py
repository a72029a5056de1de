"""The opt-in Hugging Face upload of the maps' outputs, against a fake Hub on 127.0.0.1 that speaks the
Hub's HTTP formats (fake_hf_hub.py): what arrives (repo, paths, bytes, card, auth), reruns, errors, and
the token kept out of logs, results and exceptions. LFS files take the LFS batch API (the default, Xet
switched off for the upload); `use_xet=True` is followed only as far as the Xet token and the first,
refused, CAS calls: the fake does not speak the Xet storage protocol."""

from __future__ import annotations

import json
import logging
import socket
import traceback

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from huggingface_hub import constants as hf_constants
from huggingface_hub.utils import is_package_available

from include.common.errors import ConfigurationError
from include.maps import hf_upload
from include.maps.hf_upload import HuggingFaceUploadError, upload_outputs
from include.maps.outputs import OutputPaths

from .fake_hf_hub import FakeHfHub

TOKEN = "hf_claimsflowWRITEtoken0123456789abcdef"
READ_TOKEN = "hf_claimsflowREADtoken0123456789abcdef"
REPO = "claimsflow-test/medicaid-maps"
ALL = {"upload_npi": True, "upload_hcpcs": True, "upload_npi_mapping": True, "upload_hcpcs_mapping": True}


@pytest.fixture
def outputs(tmp_path) -> OutputPaths:
    """The four outputs, small but real (parquet and CSV, as outputs.py writes them)."""
    paths = OutputPaths(tmp_path / "data")
    for p in (paths.npi_parquet, paths.npi_mapping, paths.hcpcs_mapping):
        p.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"npi": ["1234567893", "1245319599"], "response_json": ['{"results": []}', "{}"]}),
                   paths.npi_parquet, compression="zstd")
    pq.write_table(pa.table({"hcpcs_code": ["99213", "J1100"], "ef_short_desc": ["Office visit", "Dexamethasone"]}),
                   paths.hcpcs_parquet, compression="zstd")
    paths.npi_mapping.write_text("npi,status,provider_name\n1234567893,found,JANE DOE\n", encoding="utf-8")
    paths.hcpcs_mapping.write_text("hcpcs_code,status,short_desc\n99213,found,Office visit\n", encoding="utf-8")
    return paths


@pytest.fixture
def hub():
    with FakeHfHub(tokens={TOKEN: "write", READ_TOKEN: "read"}) as server:
        yield server


@pytest.fixture
def all_logs(caplog):
    """Every record at DEBUG, huggingface_hub's own included (its logger is WARNING by default)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="huggingface_hub")
    return caplog


def card_meta(content: bytes) -> dict:
    text = content.decode()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def assert_no_token(caplog, *things, min_level: int = logging.DEBUG) -> None:
    for record in caplog.records:
        if record.levelno < min_level:
            continue
        assert TOKEN not in record.getMessage() and READ_TOKEN not in record.getMessage(), record.getMessage()
    for thing in things:
        text = thing if isinstance(thing, str) else json.dumps(thing, default=str)
        assert TOKEN not in text and READ_TOKEN not in text


def test_everything_selected_goes_in_one_commit_with_the_card(hub, outputs, all_logs):
    results = upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, **ALL)

    assert hub.routes() == ["create", "paths_info", "validate_yaml", "preupload", "commit"]
    create = json.loads(hub.requests[0].body)
    assert create == {"name": "medicaid-maps", "organization": "claimsflow-test", "type": "dataset"}
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in hub.requests)

    [commit] = hub.commits
    assert commit.repo_id == REPO and commit.revision == "main"
    expected = {"npi/npi.parquet": outputs.npi_parquet, "hcpcs/hcpcs.parquet": outputs.hcpcs_parquet,
                "mappings/npi/npi_provider_mapping.csv": outputs.npi_mapping,
                "mappings/hcpcs/hcpcs_code_mapping.csv": outputs.hcpcs_mapping}
    assert set(commit.files) == {*expected, "README.md"}
    for path, local in expected.items():
        assert commit.files[path] == local.read_bytes(), path
        assert hub.repo(REPO).content(path) == local.read_bytes()
    assert pq.read_table(pa.BufferReader(commit.files["npi/npi.parquet"])).column("npi").to_pylist()[0] == "1234567893"

    meta = card_meta(commit.files["README.md"])
    assert meta["configs"] == [
        {"config_name": "npi", "data_files": [{"split": "npi", "path": "npi/npi.parquet"}]},
        {"config_name": "hcpcs", "data_files": [{"split": "hcpcs", "path": "hcpcs/hcpcs.parquet"}]},
        {"config_name": "npi_mapping",
         "data_files": [{"split": "npi_mapping", "path": "mappings/npi/npi_provider_mapping.csv"}]},
        {"config_name": "hcpcs_mapping",
         "data_files": [{"split": "hcpcs_mapping", "path": "mappings/hcpcs/hcpcs_code_mapping.csv"}]},
    ]
    card = commit.files["README.md"].decode()
    assert f'load_dataset("{REPO}", "npi")["npi"]' in card
    assert json.loads(hub.requests[2].body)["content"] == card, "the card was validated before the commit"

    assert [r["path_in_repo"] for r in results] == [*expected, "README.md"]
    assert {r["status"] for r in results} == {"uploaded"}
    assert all(r["commit"] == commit.oid and r["repo_id"] == REPO for r in results)
    assert results[0]["sha256"] == __import__("hashlib").sha256(outputs.npi_parquet.read_bytes()).hexdigest()
    assert_no_token(all_logs, results)


def test_only_the_flagged_files_go_to_their_overridden_paths(hub, outputs):
    results = upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, upload_npi=True,
                             upload_hcpcs_mapping=True, npi_path_in_repo="data/npi-2026.parquet")
    [commit] = hub.commits
    assert set(commit.files) == {"data/npi-2026.parquet", "mappings/hcpcs/hcpcs_code_mapping.csv", "README.md"}
    assert commit.files["data/npi-2026.parquet"] == outputs.npi_parquet.read_bytes()
    assert [c["config_name"] for c in card_meta(commit.files["README.md"])["configs"]] == ["npi", "hcpcs_mapping"]
    assert card_meta(commit.files["README.md"])["configs"][0]["data_files"][0]["path"] == "data/npi-2026.parquet"
    assert [r["config"] for r in results] == ["npi", "hcpcs_mapping", None]


def test_nothing_selected_sends_nothing(hub, outputs):
    assert upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url) == []
    assert hub.requests == [] and hub.repos == {}


def test_a_rerun_with_unchanged_files_commits_nothing_and_a_change_commits_only_it(hub, outputs, all_logs):
    upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, **ALL)
    hub.clear_requests()

    again = upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, **ALL)
    assert len(hub.commits) == 1
    assert {r["status"] for r in again} == {"unchanged"} and all(r["commit"] is None for r in again)
    # the repo exists (409 is fine), hashes compared, the card read back; no preupload, no commit
    assert hub.routes() == ["create", "paths_info", "resolve"]
    assert hub.requests[0].status == 409

    pq.write_table(pa.table({"npi": ["1234567893"], "response_json": ["{}"]}), outputs.npi_parquet)
    third = upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, **ALL)
    assert len(hub.commits) == 2 and set(hub.commits[1].files) == {"npi/npi.parquet"}
    assert hub.repo(REPO).content("npi/npi.parquet") == outputs.npi_parquet.read_bytes()
    assert [r["status"] for r in third] == ["uploaded", "unchanged", "unchanged", "unchanged", "unchanged"]
    assert_no_token(all_logs, again, third)


def test_the_card_keeps_other_configs_and_text(hub, outputs):
    existing = ("---\nlicense: other\nconfigs:\n- config_name: spending\n  data_files:\n  - split: spending\n"
                "    path: data/spending.parquet\n---\n# Medicaid Provider Spending\n\nWritten by hand.\n")
    hub.create(REPO, {"README.md": existing.encode(), "data/spending.parquet": b"PAR1 spending PAR1"})

    upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, upload_hcpcs=True)
    card = hub.repo(REPO).content("README.md").decode()
    meta = card_meta(card.encode())
    assert meta["license"] == "other"
    assert [c["config_name"] for c in meta["configs"]] == ["spending", "hcpcs"]
    assert "# Medicaid Provider Spending\n\nWritten by hand.\n" in card
    assert card.count(hf_upload.BEGIN) == 1

    # a later run with another split keeps the earlier one; our section is rewritten, not appended again
    upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, upload_npi=True)
    card = hub.repo(REPO).content("README.md").decode()
    assert [c["config_name"] for c in card_meta(card.encode())["configs"]] == ["spending", "hcpcs", "npi"]
    assert card.count(hf_upload.BEGIN) == 1 and '"hcpcs")["hcpcs"]' in card and '"npi")["npi"]' in card
    assert hub.repo(REPO).content("data/spending.parquet") == b"PAR1 spending PAR1"


def test_lfs_files_go_through_the_lfs_batch_api(outputs, all_logs):
    # the real Hub answers "lfs" for *.parquet; by default (use_xet=False) the upload switches hf_xet off, so
    # that huggingface_hub uses the git-lfs batch API with a basic PUT
    with FakeHfHub(tokens={TOKEN: "write"}, lfs_patterns=("*.parquet",)) as hub:
        results = upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, **ALL)
        [commit] = hub.commits
        assert sorted(commit.lfs_paths) == ["hcpcs/hcpcs.parquet", "npi/npi.parquet"]
        assert commit.files["npi/npi.parquet"] == outputs.npi_parquet.read_bytes()
        assert commit.files["hcpcs/hcpcs.parquet"] == outputs.hcpcs_parquet.read_bytes()
        assert commit.files["mappings/npi/npi_provider_mapping.csv"] == outputs.npi_mapping.read_bytes()
        puts = [r for r in hub.requests if r.route == "s3_put"]
        assert len(puts) == 2 and all("authorization" not in r.headers for r in puts), "presigned: no token to S3"
        api = [r for r in hub.requests if r.route != "s3_put"]
        assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in api)
        assert {"lfs_batch", "lfs_verify"} <= set(hub.routes())

        hub.clear_requests()
        again = upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, **ALL)
        assert {r["status"] for r in again} == {"unchanged"} and len(hub.commits) == 1
        assert "lfs_batch" not in hub.routes()
    assert_no_token(all_logs, results, again)


@pytest.fixture
def xet_on(monkeypatch):
    """A worker as installed: hf_xet importable and HF_HUB_DISABLE_XET unset, i.e. huggingface_hub would
    upload LFS files through Xet storage. Yields a function answering what the flag was at each request
    the hub received (the fake hub runs in this process: it sees the same module constant)."""
    assert is_package_available("hf_xet"), "hf_xet (a dependency of huggingface_hub) is installed"
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", False)
    return hf_constants


def watch_xet_flag(hub: FakeHfHub) -> list[tuple[str | None, bool]]:
    """(route, HF_HUB_DISABLE_XET) at every request the hub receives."""
    seen: list[tuple[str | None, bool]] = []
    handle = hub.handle

    def watching(method, path, *args):
        status = handle(method, path, *args)
        seen.append((hub.requests[-1].route, hf_constants.HF_HUB_DISABLE_XET))
        return status

    hub.handle = watching  # the request handler calls hub.handle
    return seen


@pytest.mark.parametrize("previous", [False, True], ids=["xet-on-before", "xet-off-before"])
def test_by_default_lfs_files_skip_xet_and_the_flag_is_restored(xet_on, outputs, all_logs, previous):
    xet_on.HF_HUB_DISABLE_XET = previous
    with FakeHfHub(tokens={TOKEN: "write"}, lfs_patterns=("*.parquet",)) as hub:
        seen = watch_xet_flag(hub)
        upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, **ALL)
        routes = hub.routes()
        [commit] = hub.commits
    assert routes.count("lfs_batch") == 1 and routes.count("s3_put") == 2 and "lfs_verify" in routes
    assert not any(r and r.startswith("xet_") for r in routes), routes
    assert sorted(commit.lfs_paths) == ["hcpcs/hcpcs.parquet", "npi/npi.parquet"]
    assert seen and all(disabled for _, disabled in seen), "Xet switched off for the whole upload"
    assert hf_constants.HF_HUB_DISABLE_XET is previous, "the flag is restored after the upload"
    assert not any(r.levelno >= logging.WARNING and "Xet" in r.getMessage() for r in all_logs.records)


@pytest.mark.parametrize("failure", ["lfs_batch refused", "unreadable card"])
def test_the_flag_is_restored_after_a_failing_upload(xet_on, outputs, failure):
    with FakeHfHub(tokens={TOKEN: "write"}, lfs_patterns=("*.parquet",)) as hub:
        seen = watch_xet_flag(hub)
        if failure == "lfs_batch refused":
            hub.fail(403, route="lfs_batch", message="LFS is disabled for this repo")
            expected, match = HuggingFaceUploadError, f"{REPO}: committing the files failed with HTTP 403"
        else:
            hub.create(REPO, {"README.md": b"---\nconfigs: [unclosed\n---\n"})
            expected, match = ConfigurationError, "YAML header"
        with pytest.raises(expected, match=match):
            upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, **ALL)
        assert hub.commits == []
    assert seen and all(disabled for _, disabled in seen)
    assert hf_constants.HF_HUB_DISABLE_XET is False, "the flag is restored after a failure too"


def test_use_xet_takes_the_xet_route_which_fails_clearly_against_the_fake_hub(
        xet_on, outputs, all_logs, capfd, tmp_path, monkeypatch):
    # hf_xet's cache and logs go to HF_XET_CACHE (read by hf_xet itself): keep them out of the home directory
    xet_cache = tmp_path / "xet-cache"
    monkeypatch.setenv("HF_XET_CACHE", str(xet_cache))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    xet_on.HF_HUB_DISABLE_XET = True  # use_xet=True wins over a worker's HF_HUB_DISABLE_XET=1
    with FakeHfHub(tokens={TOKEN: "write"}, lfs_patterns=("*.parquet",)) as hub:
        seen = watch_xet_flag(hub)
        with pytest.raises(HuggingFaceUploadError) as caught:
            upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, use_xet=True, **ALL)
        routes = hub.routes()
        requests = list(hub.requests)
        xet_tokens = list(hub.xet_tokens)
        assert hub.commits == []
    # the Xet route: the Hub's Xet write token, then hf_xet's CAS calls (refused: not faked); no LFS batch API
    assert routes[:5] == ["create", "paths_info", "validate_yaml", "preupload", "xet_write_token"], routes
    assert "xet_cas" in routes and "lfs_batch" not in routes and "commit" not in routes
    assert all(disabled is False for route, disabled in seen if route in ("preupload", "xet_write_token"))
    [token_request] = [r for r in requests if r.route == "xet_write_token"]
    assert token_request.headers["authorization"] == f"Bearer {TOKEN}"
    assert token_request.path == f"/api/datasets/{REPO}/xet-write-token/main"
    cas = [r for r in requests if r.route in ("xet_cas", "xet_telemetry")]
    assert cas and all(r.headers.get("authorization") in {f"Bearer {t}" for t in xet_tokens} for r in cas), \
        "the CAS gets the short-lived Xet token, never the Hub token"
    assert all(r.status == 404 for r in requests if r.route == "xet_cas")

    err = caught.value
    message = str(err)
    assert message.startswith(f"Hugging Face dataset {REPO}: committing the files failed in the Xet storage upload")
    assert "/_cas/" in message and "not covered by claimsflow's tests" in message and "LFS batch API" in message
    assert err.status == 404
    assert err.__cause__ is None and err.__suppress_context__
    assert_no_token(all_logs, message, "".join(traceback.format_exception(err)), str(err.__dict__))
    assert any(r.levelno == logging.WARNING and "use_xet is on" in r.getMessage()
               and "NOT covered by claimsflow's tests" in r.getMessage() for r in all_logs.records)
    out, errout = capfd.readouterr()
    assert TOKEN not in out and TOKEN not in errout
    for f in (p for p in xet_cache.rglob("*") if p.is_file()):  # hf_xet's own log files
        assert TOKEN not in f.read_text(errors="replace"), f
    assert hf_constants.HF_HUB_DISABLE_XET is True, "the flag is restored"


@pytest.mark.parametrize("scope", ["none", "read"])
def test_refused_tokens_fail_naming_the_repo(hub, outputs, all_logs, scope):
    token = {"none": "hf_claimsflowUNKNOWNtoken0123456789", "read": READ_TOKEN}[scope]
    hub.create(REPO)  # a read token sees the repo: create_repo's exist_ok path goes on, the write is refused
    with pytest.raises(HuggingFaceUploadError) as caught:
        upload_outputs(outputs, repo_id=REPO, token=token, endpoint=hub.url, upload_npi=True)
    err = caught.value
    status = 401 if scope == "none" else 403
    assert err.status == status
    assert REPO in str(err) and f"HTTP {status}" in str(err) and "connection `huggingface`" in str(err)
    assert hub.commits == []
    text = "".join(traceback.format_exception(err))
    assert token not in text and token not in str(err.__dict__)
    assert err.__cause__ is None and err.__suppress_context__, "the request (with its header) is not chained"
    assert all(token not in r.getMessage() for r in all_logs.records)


def test_a_hub_that_echoes_the_token_does_not_leak_it(hub, outputs, all_logs):
    # only what we log and raise can be scrubbed: httpcore2's own DEBUG trace prints response headers verbatim
    # (task logs run at INFO), so this hostile case checks INFO and above
    hub.fail(403, route="commit", message="token {authorization} is not allowed here")
    with pytest.raises(HuggingFaceUploadError) as caught:
        upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, upload_npi=True)
    assert "Bearer ***" in str(caught.value)
    assert_no_token(all_logs, str(caught.value), "".join(traceback.format_exception(caught.value)),
                    min_level=logging.INFO)


@pytest.mark.parametrize("route", ["create", "commit"])
def test_a_server_error_fails_naming_the_repo_and_a_rerun_succeeds(hub, outputs, route):
    hub.fail(500, route=route)
    with pytest.raises(HuggingFaceUploadError, match=rf"{REPO}: .* HTTP 500 \(the Hub failed") as caught:
        upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, **ALL)
    assert caught.value.status == 500 and hub.commits == []
    results = upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, **ALL)
    assert {r["status"] for r in results} == {"uploaded"} and len(hub.commits) == 1


def test_an_unreachable_endpoint_fails_naming_the_repo(outputs):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(HuggingFaceUploadError, match=f"{REPO}: creating the dataset repo failed: cannot reach"):
        upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=f"http://127.0.0.1:{port}", upload_npi=True)


@pytest.mark.parametrize("kwargs, message", [
    ({"token": ""}, "has no password"),
    ({"repo_id": "no-namespace"}, "must be '<user or organization>/<name>'"),
    ({"repo_id": "bad//id"}, "is not a Hugging Face repo id"),
    ({"npi_path_in_repo": "../escape.parquet"}, "relative file path"),
    ({"npi_path_in_repo": "README.md"}, "dataset card"),
    ({"npi_path_in_repo": "hcpcs/hcpcs.parquet", "upload_hcpcs": True}, "same path"),
])
def test_bad_settings_fail_before_any_request(hub, outputs, kwargs, message):
    args = {"repo_id": REPO, "token": TOKEN, "upload_npi": True, **kwargs}
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        upload_outputs(outputs, endpoint=hub.url, **args)
    assert hub.requests == []
    assert TOKEN not in str(caught.value)


def test_missing_outputs_fail_before_any_request(hub, outputs):
    outputs.hcpcs_mapping.unlink()
    with pytest.raises(ConfigurationError, match="hcpcs_code_mapping.csv"):
        upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, upload_hcpcs_mapping=True)
    assert hub.requests == []


def test_an_unreadable_remote_card_is_a_clear_error(hub, outputs):
    hub.create(REPO, {"README.md": b"---\nconfigs: [unclosed\n---\nbody\n"})
    with pytest.raises(ConfigurationError, match=f"{REPO}: the existing README.md has a YAML header"):
        upload_outputs(outputs, repo_id=REPO, token=TOKEN, endpoint=hub.url, upload_npi=True)
    assert hub.commits == []
