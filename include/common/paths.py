"""The data root: one folder that holds every downloaded and produced file.

    <data root>/raw/    downloads, as fetched (and extracted)
    <data root>/work/   intermediate files of a run (caches, parts)
    <data root>/out/    the outputs users consume

Set by the Airflow Variable `claimsflow_data_dir` (plugins resolve it) or the environment variable
CLAIMSFLOW_DATA_DIR; default `./data` in the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from include.common.errors import ConfigurationError

ENV_VAR = "CLAIMSFLOW_DATA_DIR"
AREAS = ("raw", "work", "out")


def data_root(value: str | os.PathLike | None = None, *, create: bool = True) -> Path:
    """Resolve the data root (explicit value, else $CLAIMSFLOW_DATA_DIR, else ./data) and check it is usable."""
    raw = value if value not in (None, "") else os.environ.get(ENV_VAR) or "data"
    root = Path(raw).expanduser().resolve()
    if create:
        try:
            for area in AREAS:
                (root / area).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot create the data folders: {exc.strerror}", source=str(root)) from exc
    if not os.access(root, os.W_OK):
        raise ConfigurationError("the data root is not writable", source=str(root))
    return root
