"""Resumable, verified downloads of one file.

    result = fetch(client, url, target, verify=check_zip)

- Bytes stream into `<target>.part` (1 MiB chunks, hashed on the way); an interrupted transfer is
  resumed with `Range: bytes=<have>-` and `If-Range: <etag>`, within this call and on the next run.
- The size is checked against Content-Length / Content-Range, the checksum when one is known, then
  `verify(path)` (zip test, parquet schema, ...). Only then is `.part` renamed onto `target` (atomic)
  and a sidecar `<target>.download.json` written: url, bytes, sha256, etag, last-modified.
- A file that fails verification is moved to `<folder>/.quarantine/` and the error names it; the next
  run downloads it again. A file already complete is revalidated with If-None-Match/If-Modified-Since:
  a 304 transfers nothing; a changed file is downloaded beside the old one and swapped in when verified.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
import urllib3

from include.common.errors import DownloadError, HttpError
from include.common.files import sha256_of
from include.common.progress import Progress
from include.http.client import RETRYABLE_EXCEPTIONS, HttpClient, redact

log = logging.getLogger("claimsflow.download")

CHUNK = 1 << 20
# Network reads: a connection that drops loses at most the chunk in flight, so keep it small.
NET_CHUNK = 1 << 20  # read1() returns what has arrived, up to this
SIDECAR_SUFFIX = ".download.json"
PART_SUFFIX = ".part"
QUARANTINE = ".quarantine"

Verifier = Callable[[Path], None]


@dataclass
class FetchResult:
    url: str
    path: str
    status: str  # downloaded | resumed | unchanged | reused
    bytes: int  # size of the file on disk
    bytes_transferred: int  # body bytes received by this call
    sha256: str
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def sidecar_path(target: Path) -> Path:
    return target.with_name(target.name + SIDECAR_SUFFIX)


def part_path(target: Path) -> Path:
    return target.with_name(target.name + PART_SUFFIX)


def read_sidecar(target: Path) -> dict | None:
    path = sidecar_path(target)
    if not path.is_file() or not target.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    # A sidecar only vouches for the file it describes.
    return data if data.get("bytes") == target.stat().st_size else None


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


def quarantine(path: Path, reason: str) -> Path:
    """Move a bad file aside (never delete evidence) and return where it went."""
    folder = path.parent / QUARANTINE
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    dest = folder / f"{path.name.removesuffix(PART_SUFFIX)}.{stamp}"
    shutil.move(str(path), dest)
    dest.with_name(dest.name + ".reason.txt").write_text(reason + "\n")
    log.error("quarantined %s -> %s: %s", path, dest, reason)
    return dest


def _ensure_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the folder: {exc.strerror}", source=str(folder)) from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DownloadError("folder is not writable", source=str(folder))


def fetch(
    client: HttpClient,
    url: str,
    target: Path,
    *,
    verify: Verifier | None = None,
    sha256: str | None = None,
    revalidate: bool = True,
    force: bool = False,
    attempts: int = 5,
    label: str | None = None,
) -> FetchResult:
    """Make `target` a complete, verified copy of `url`; returns what was done."""
    target = Path(target)
    url = client.url(url)
    _ensure_writable(target.parent)
    label = label or target.name
    known = None if force else read_sidecar(target)

    headers: dict[str, str] = {}
    if known and known.get("url") == url:
        if not revalidate or not (known.get("etag") or known.get("last_modified")):
            log.info("%s: complete copy on disk (%s bytes); not fetched again", label, f"{known['bytes']:,}")
            return FetchResult(**{**_result_fields(known), "status": "reused", "bytes_transferred": 0})
        if known.get("etag"):
            headers["If-None-Match"] = known["etag"]
        if known.get("last_modified"):
            headers["If-Modified-Since"] = known["last_modified"]
    elif target.is_file() and target.stat().st_size > 0 and not force and known is None and not sidecar_path(target).exists():
        # A file placed by hand (or by an older tool) without a sidecar: trust it, like the seed does,
        # but record it so the next run can revalidate.
        digest = sha256_of(target)
        record = {"url": url, "path": str(target), "bytes": target.stat().st_size, "sha256": digest, "etag": None,
                  "last_modified": None, "fetched_at": _now()}
        if verify:
            _verify_or_quarantine(target, verify, label)
        _write_json_atomic(sidecar_path(target), record)
        log.info("%s: using the existing file (%s bytes); not downloaded", label, f"{record['bytes']:,}")
        return FetchResult(**{**_result_fields(record), "status": "reused", "bytes_transferred": 0})

    part = part_path(target)
    part_meta_path = part.with_name(part.name + ".json")
    transferred = 0
    resumed = False
    last_error = ""
    # Hashed on the way in, on a second thread: `hashed` covers the first `hashed.size` bytes of .part.
    hashed = _BackgroundHash()
    try:
        for attempt in range(1, attempts + 1):
            have = part.stat().st_size if part.exists() else 0
            part_meta = _read_json(part_meta_path) if have else None
            # identity: sizes and byte ranges must be those of the file, not of a compressed stream
            request_headers = {**headers, "Accept-Encoding": "identity"}
            if have and part_meta and part_meta.get("url") == url and (part_meta.get("etag") or part_meta.get("last_modified")):
                request_headers["Range"] = f"bytes={have}-"
                request_headers["If-Range"] = part_meta.get("etag") or part_meta["last_modified"]
                request_headers.pop("If-None-Match", None)
                request_headers.pop("If-Modified-Since", None)
            elif have:
                part.unlink()  # a partial file we cannot vouch for: start over
                have = 0
            try:
                response = client.get(url, headers=request_headers, stream=True, accept=(200, 206, 304))
            except HttpError as exc:
                raise DownloadError(f"download failed: {exc}", source=redact(url)) from exc

            with response:
                if response.status_code == 304:
                    log.info("%s: unchanged on the server (304); 0 bytes transferred", label)
                    return FetchResult(**{**_result_fields(known or {}), "status": "unchanged", "bytes_transferred": transferred})
                etag = response.headers.get("ETag")
                last_modified = response.headers.get("Last-Modified")
                if response.status_code == 206:
                    start, total = _content_range(response.headers.get("Content-Range"), url)
                    if start != have:
                        raise DownloadError(f"server resumed at byte {start}, expected {have}", source=redact(url))
                    resumed = True
                    log.info("%s: resuming at byte %s of %s", label, f"{have:,}", f"{total:,}")
                    mode = "ab"
                    if hashed.size != have:  # a .part left by an earlier run: hash what it holds first
                        hashed.finish()
                        hashed = _BackgroundHash(*_hash_prefix(part, have))
                else:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    have = 0
                    mode = "wb"
                    hashed.finish()
                    hashed = _BackgroundHash()
                _write_json_atomic(part_meta_path, {"url": url, "etag": etag, "last_modified": last_modified, "total": total})
                progress = Progress(f"download {label}", total=total, unit="B", start=have)
                try:
                    with part.open(mode) as out:
                        for block in _blocks(response):
                            out.write(block)
                            hashed.update(block)
                            transferred += len(block)
                            progress.advance(len(block))
                except RETRYABLE_EXCEPTIONS + (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
                    last_error = f"connection lost after {part.stat().st_size:,} bytes ({type(exc).__name__})"
                    log.warning("%s: %s; attempt %d/%d", label, last_error, attempt, attempts)
                    if attempt < attempts:
                        time.sleep(min(2 ** (attempt - 1), 30) * 0.1)
                    continue
                except OSError as exc:
                    raise DownloadError(f"cannot write the download: {exc.strerror}", source=str(part)) from exc
            size = part.stat().st_size
            if total is not None and size < total:
                last_error = f"body ended after {size:,} of {total:,} bytes"
                log.warning("%s: %s; attempt %d/%d", label, last_error, attempt, attempts)
                continue
            if total is not None and size > total:
                quarantine(part, f"{size:,} bytes received, server announced {total:,}")
                part_meta_path.unlink(missing_ok=True)
                raise DownloadError(f"received {size:,} bytes, more than the announced {total:,}; quarantined", source=redact(url))
            progress.finish()
            break
        else:
            raise DownloadError(
                f"download incomplete after {attempts} attempts ({last_error}); the partial file {part.name} is kept and "
                "the next run resumes it",
                source=redact(url),
            )

        hashed.finish()
        digest = hashed.hexdigest() if hashed.size == part.stat().st_size else sha256_of(part)
    finally:
        hashed.finish()
    if sha256 and digest != sha256.lower():
        quarantine(part, f"sha256 {digest} != expected {sha256}")
        part_meta_path.unlink(missing_ok=True)
        raise DownloadError(f"checksum mismatch (got {digest}, expected {sha256}); quarantined", source=redact(url))
    if verify:
        try:
            _verify_or_quarantine(part, verify, label)
        finally:
            part_meta_path.unlink(missing_ok=True)
    record = {"url": url, "path": str(target), "bytes": part.stat().st_size, "sha256": digest, "etag": etag,
              "last_modified": last_modified, "fetched_at": _now()}
    # Order matters: the sidecar is removed first, so a crash between the steps leaves a file with no
    # sidecar (re-verified next run) rather than a sidecar vouching for the old file.
    sidecar_path(target).unlink(missing_ok=True)
    os.replace(part, target)
    _write_json_atomic(sidecar_path(target), record)
    part_meta_path.unlink(missing_ok=True)
    status = "resumed" if resumed else "downloaded"
    log.info("%s: %s, %s bytes (%s transferred by this run)", label, status, f"{record['bytes']:,}", f"{transferred:,}")
    return FetchResult(**{**_result_fields(record), "status": status, "bytes_transferred": transferred})


class _BackgroundHash:
    """sha256 on a second thread: hashlib releases the GIL on large buffers, so hashing overlaps
    receiving and writing instead of adding to them (a bounded queue keeps memory flat)."""

    def __init__(self, h=None, size: int = 0) -> None:
        self.h = h or hashlib.sha256()
        self.size = size
        self._queue: queue.Queue = queue.Queue(maxsize=16)
        self._thread = threading.Thread(target=self._run, name="fetch-sha256", daemon=True)
        self._thread.start()
        self._done = False

    def _run(self) -> None:
        while (block := self._queue.get()) is not None:
            self.h.update(block)

    def update(self, block: bytes) -> None:
        self._queue.put(block)
        self.size += len(block)

    def finish(self) -> None:
        if not self._done:
            self._done = True
            self._queue.put(None)
            self._thread.join()

    def hexdigest(self) -> str:
        self.finish()
        return self.h.hexdigest()


def _hash_prefix(path: Path, size: int):
    h, done = hashlib.sha256(), 0
    with path.open("rb") as f:
        while done < size and (block := f.read(min(CHUNK, size - done))):
            h.update(block)
            done += len(block)
    return h, done


def _blocks(response: requests.Response):
    """The body as it arrives. read1() hands over whatever came before a dropped connection, so the
    .part file keeps every byte received (iter_content would lose the chunk in flight)."""
    raw = response.raw
    while True:
        block = raw.read1(NET_CHUNK, decode_content=True)
        if not block:
            return
        yield block


def _verify_or_quarantine(path: Path, verify: Verifier, label: str) -> None:
    try:
        verify(path)
    except DownloadError as exc:
        where = quarantine(path, str(exc))
        raise DownloadError(f"{label} failed verification and was quarantined to {where}: {exc.message}",
                            source=exc.source or label) from exc


def _content_range(value: str | None, url: str) -> tuple[int, int]:
    # "bytes 100-199/1000"
    try:
        unit, rest = (value or "").split(" ", 1)
        span, total = rest.split("/")
        start = int(span.split("-")[0])
        return start, int(total)
    except ValueError as exc:
        raise DownloadError(f"206 answer without a usable Content-Range ({value!r})", source=redact(url)) from exc


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _result_fields(record: dict) -> dict:
    return {
        "url": record.get("url", ""),
        "path": record.get("path", ""),
        "bytes": record.get("bytes", 0),
        "sha256": record.get("sha256", ""),
        "etag": record.get("etag"),
        "last_modified": record.get("last_modified"),
        "fetched_at": record.get("fetched_at", ""),
        "status": "",
        "bytes_transferred": 0,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
