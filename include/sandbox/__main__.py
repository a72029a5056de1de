"""The sandbox command line.

    python -m include.sandbox generate --scale tiny|demo|full --out DIR [--seed N] [--only part,...] [--set name=value ...]
    python -m include.sandbox serve --data DIR [--port N] [--rate-limit RPS]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from include.sandbox.core import SCALES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.sandbox", description="claimsflow's synthetic sources and loopback servers")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write synthetic source files in the real formats")
    gen.add_argument("--scale", choices=sorted(SCALES), default="tiny")
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--only", default="", help="comma-separated parts (default: all)")
    gen.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="override a scale count, e.g. --set nppes_rows=1000000 (repeatable)")

    srv = sub.add_parser("serve", help="serve the download sites and APIs on 127.0.0.1")
    srv.add_argument("--data", type=Path, required=True)
    srv.add_argument("--port", type=int, default=8790)
    srv.add_argument("--rate-limit", type=float, default=None, help="requests per second per client for the APIs")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.command == "generate":
        from include.sandbox.generate import generate

        overrides = dict(item.split("=", 1) for item in args.set)
        scale = SCALES[args.scale].with_overrides(overrides)
        started = time.monotonic()
        manifest = generate(args.out, scale, seed=args.seed, only=[p for p in args.only.split(",") if p] or None)
        total = sum(f["bytes"] for f in manifest.files.values())
        print(f"generated {len(manifest.files)} files, {total / 2**20:,.1f} MiB, in {time.monotonic() - started:.1f}s "
              f"-> {args.out / 'manifest.json'}")
        return 0

    from include.sandbox.server import serve_forever

    return serve_forever(args.data, port=args.port, rate_limit=args.rate_limit)


if __name__ == "__main__":
    sys.exit(main())
