"""Zip handling that never trusts the archive: structure checks, zip-slip refusal, `__MACOSX` skipping,
extraction into a temporary folder that is renamed into place only when every member (and its CRC)
came out whole, and the recursive unpacking of zips inside zips that CMS ships.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from include.common.errors import DownloadError

log = logging.getLogger("claimsflow.download")

MARKER = ".claimsflow-extracted.json"
CHUNK = 1 << 20


def is_clutter(name: str) -> bool:
    """macOS resource forks and folder metadata that some archives carry."""
    parts = PurePosixPath(name).parts
    return any(p == "__MACOSX" or p.startswith("._") or p == ".DS_Store" for p in parts)


def check_zip(path: Path) -> None:
    """Cheap structural test run on every downloaded zip: the central directory parses (a truncated
    zip loses it), member offsets lie inside the file, names are safe. CRCs are checked on extraction."""
    path = Path(path)
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            for info in infos:
                if info.header_offset + 30 + len(info.filename) > size:
                    raise DownloadError(f"member {info.filename!r} lies past the end of the file (truncated?)",
                                        source=str(path))
                _safe_member_path(info, path)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"not a readable zip archive ({exc})", source=str(path)) from exc
    if not infos:
        raise DownloadError("zip archive is empty", source=str(path))


def _safe_member_path(info: zipfile.ZipInfo, archive: Path) -> PurePosixPath | None:
    """The member's relative path, or an error when it would land outside the target (zip-slip)."""
    name = info.filename.replace("\\", "/")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DownloadError(f"member {info.filename!r} is a symbolic link; refusing to extract", source=str(archive))
    pure = PurePosixPath(name)
    if pure.is_absolute() or (pure.parts and pure.parts[0].endswith(":")) or ".." in pure.parts:
        raise DownloadError(f"member {info.filename!r} would be written outside the target folder (zip-slip); "
                            "refusing to extract", source=str(archive))
    parts = [p for p in pure.parts if p not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


@dataclass
class Extraction:
    archive: str
    target: str
    members: int
    bytes: int
    skipped: list[str] = field(default_factory=list)
    reused: bool = False


def _archive_stamp(archive: Path) -> dict:
    st = archive.stat()
    return {"archive": archive.name, "archive_bytes": st.st_size, "archive_mtime_ns": st.st_mtime_ns}


def read_marker(target: Path) -> dict | None:
    try:
        return json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return None


def single_top_folder(archive: Path) -> str | None:
    """The one folder every (non-clutter) member lives in, if there is exactly one."""
    with zipfile.ZipFile(archive) as zf:
        tops = {PurePosixPath(i.filename.replace("\\", "/")).parts[0] for i in zf.infolist()
                if not is_clutter(i.filename) and i.filename.strip("/")}
        single = len(tops) == 1 and all("/" in i.filename.replace("\\", "/").strip("/") or i.is_dir()
                                        for i in zf.infolist() if not is_clutter(i.filename))
    return next(iter(tops)) if single else None


def extract_zip(archive: Path, target: Path, *, force: bool = False, strip_top: bool = False) -> Extraction:
    """Extract `archive` into `target` atomically (`strip_top`: without the members' common top folder).
    Re-running with the same archive is a no-op; a changed archive replaces the folder only after the
    new extraction succeeded."""
    archive, target = Path(archive), Path(target)
    stamp = _archive_stamp(archive)
    marker = read_marker(target)
    if not force and marker and all(marker.get(k) == v for k, v in stamp.items()):
        log.info("%s: already extracted into %s (%d members); skipped", archive.name, target, marker["members"])
        return Extraction(str(archive), str(target), marker["members"], marker["bytes"], reused=True)

    staging = target.with_name(f".{target.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    members = total = 0
    skipped: list[str] = []
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            plan = []
            for info in infos:  # validate every name before writing anything
                rel = _safe_member_path(info, archive)
                if rel is None:
                    continue
                if is_clutter(info.filename):
                    skipped.append(info.filename)
                    continue
                if strip_top:
                    if len(rel.parts) == 1:
                        continue  # the top folder entry itself
                    rel = PurePosixPath(*rel.parts[1:])
                plan.append((info, rel))
            for info, rel in plan:
                dest = staging.joinpath(*rel.parts)
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)  # zipfile checks the CRC at the end of each member
                members += 1
                total += info.file_size
    except zipfile.BadZipFile as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(f"corrupt zip: {exc}", source=str(archive)) from exc
    except (OSError, EOFError, zipfile.LargeZipFile, NotImplementedError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise DownloadError(f"cannot extract: {exc.strerror}", source=str(archive)) from exc
        raise DownloadError(f"corrupt zip: {exc}", source=str(archive)) from exc
    except DownloadError:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    (staging / MARKER).write_text(json.dumps({**stamp, "members": members, "bytes": total}, sort_keys=True))
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
    log.info("%s: extracted %d members (%s bytes) into %s%s", archive.name, members, f"{total:,}", target,
             f"; skipped {len(skipped)} clutter entries" if skipped else "")
    return Extraction(str(archive), str(target), members, total, skipped)


@dataclass
class NestedReport:
    extracted: list[Extraction] = field(default_factory=list)
    corrupt: list[tuple[str, str]] = field(default_factory=list)  # (archive, error)


def extract_nested(root: Path, *, max_depth: int = 10) -> NestedReport:
    """Unpack every zip under `root`, then the zips that came out of them, until none is new.

    As in the seed, an archive whose members share one top folder `T/` is unpacked to `T/` beside it,
    any other `x.zip` to `x/`; trailing spaces are dropped from those folder names. A corrupt nested
    zip is reported and left as it is; the rest is still unpacked.
    """
    root = Path(root)
    report = NestedReport()
    seen: set[Path] = set()
    for _depth in range(max_depth):
        new = [p for p in sorted(root.rglob("*")) if p.suffix.lower() == ".zip" and p.is_file()
               and p.resolve() not in seen and not _in_hidden(p, root) and not is_clutter(p.relative_to(root).as_posix())]
        if not new:
            return report
        for archive in new:
            seen.add(archive.resolve())
            try:
                top = single_top_folder(archive)
                name = (top or archive.name[: -len(archive.suffix)]).rstrip() or archive.name + "_extracted"
                report.extracted.append(extract_zip(archive, archive.with_name(name), strip_top=top is not None))
            except zipfile.BadZipFile as exc:
                log.error("%s: corrupt zip (%s); skipped", archive, exc)
                report.corrupt.append((str(archive.relative_to(root)), f"corrupt zip: {exc}"))
            except DownloadError as exc:
                log.error("%s", exc)
                report.corrupt.append((str(archive.relative_to(root)), exc.message))
    raise DownloadError(f"zips nested more than {max_depth} levels deep", source=str(root))


def _in_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts[:-1])
