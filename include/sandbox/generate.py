"""`python -m include.sandbox generate`: write every synthetic source, then the manifest.

Each part is a module with `generate(ctx: GenContext) -> None` that writes its files under
`ctx.root` and records them (and the defects it planted) in `ctx.manifest`. Parts run in the order
below; a part may read what an earlier one recorded in `ctx.manifest.counts`.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from include.sandbox.core import SCALES, Manifest, Scale

log = logging.getLogger("claimsflow.sandbox")

# Bumped whenever a generator's output changes, so `make demo` regenerates an outdated sandbox.
SANDBOX_VERSION = 5

# name -> module; the order is the generation order.
PARTS: dict[str, str] = {
    "nucc": "include.sandbox.nucc",
    "nppes": "include.sandbox.nppes",
    "medicaid": "include.sandbox.medicaid",
    "cpt": "include.sandbox.cpt",
    "hop_teaming": "include.sandbox.hop_teaming",
    "medicare": "include.sandbox.medicare",
}


@dataclass
class GenContext:
    root: Path  # the --out folder
    scale: Scale
    seed: int
    manifest: Manifest

    def path(self, *parts: str) -> Path:
        """A path under the output root, its folder created."""
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def generate(out: Path, scale: str | Scale = "tiny", seed: int = 1, only: list[str] | None = None) -> Manifest:
    """Generate the sandbox into `out` (parts not named in `only` are skipped) and write manifest.json."""
    scale_obj = SCALES[scale] if isinstance(scale, str) else scale
    unknown = set(only or []) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown sandbox part(s) {sorted(unknown)}; known: {', '.join(PARTS)}")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    from dataclasses import asdict

    manifest = Manifest(seed=seed, scale=asdict(scale_obj))
    ctx = GenContext(root=out, scale=scale_obj, seed=seed, manifest=manifest)
    for name, module in PARTS.items():
        if only and name not in only:
            continue
        started = time.monotonic()
        importlib.import_module(module).generate(ctx)
        log.info("sandbox %s generated in %.1fs", name, time.monotonic() - started)
    manifest.count("sandbox.version", SANDBOX_VERSION)
    manifest.count("sandbox.parts", [name for name in PARTS if not only or name in only])
    manifest.write(out)
    return manifest
