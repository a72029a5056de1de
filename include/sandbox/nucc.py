"""The NUCC health care provider taxonomy CSV (`site/images/stories/CSV/nucc_taxonomy_251.csv`) with the
current header, every taxonomy the provider universe uses, definitions with quotes, commas and line
breaks inside quoted fields; and an older cp1252 version without Display Name/Section."""

from __future__ import annotations

import csv
import io

from include.sandbox.core import NUCC_DIR, SITE, rng
from include.sandbox.providers import TAXONOMIES

HEADER = ["Code", "Grouping", "Classification", "Specialization", "Definition", "Notes", "Display Name", "Section"]
OLD_HEADER = ["Code", "Grouping", "Classification", "Specialization", "Definition", "Notes"]
EXTRA_GROUPS = ("Nursing Service Providers", "Other Service Providers", "Transportation Services",
                "Eye and Vision Services Providers", "Pharmacy Service Providers")


def rows(seed: int) -> list[list[str]]:
    r = rng(seed, "nucc")
    out = []
    for code, group, classification, specialization in TAXONOMIES:
        display = f"{specialization} ({classification}) Physician" if specialization else f"{classification} Physician"
        definition = (f'A provider of "{classification.lower()}" services, as defined by the NUCC.\n'
                      "Source: National Uniform Claim Committee, 2025")
        out.append([code, group, classification, specialization, definition, "[7/1/2003: new]", display, "Individual"
                    if group.startswith(("Allopathic", "Physician", "Behavioral", "Dental", "Respiratory")) else "Non-Individual"])
    for i in range(200):
        group = EXTRA_GROUPS[i % len(EXTRA_GROUPS)]
        code = f"{3 + i % 4}{r.randint(10, 99)}{r.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{r.randint(0, 9999):04d}X"
        classification = f"Service Type {i:03d}"
        out.append([code, group, classification, "", f"Services of type {i}, including assessment, planning, and care.",
                    "", f"{classification} Provider", "Non-Individual"])
    return out


def generate(ctx) -> None:
    data = rows(ctx.seed)
    path = ctx.path(SITE, *NUCC_DIR.split("/"), "nucc_taxonomy_251.csv")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(data)
    path.write_bytes(buf.getvalue().encode("utf-8"))
    ctx.manifest.add_file(ctx.root, path, "nucc_taxonomy", rows=len(data))
    ctx.manifest.count("nucc.rows", len(data))

    old = ctx.path(SITE, *NUCC_DIR.split("/"), "nucc_taxonomy_121.csv")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(OLD_HEADER)
    for row in data[: len(TAXONOMIES)]:
        writer.writerow([*row[:4], row[4].replace("provider", "provider\u2019s"), row[5]])
    old.write_bytes(buf.getvalue().encode("cp1252"))
    ctx.manifest.add_file(ctx.root, old, "nucc_taxonomy_old", rows=len(TAXONOMIES), encoding="cp1252")
    ctx.manifest.defect("nucc.cp1252_file", 1, "an older taxonomy CSV in cp1252 with a curly apostrophe",
                        ["nucc_taxonomy_121.csv"])
