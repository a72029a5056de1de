"""Finding the files to download from the index pages CMS publishes.

The pages change layout now and then, so discovery reads only what is stable: the `href`s (any quoting
or case, relative or absolute) and the file-name conventions. When nothing matches, the error names the
page and the pattern, so a user can pin a URL by hand (DAG params) until the code catches up.
"""

from __future__ import annotations

import calendar
import html
import re
from dataclasses import dataclass
from datetime import date
from urllib.parse import unquote, urljoin, urlsplit

from include.common.errors import DownloadError

HREF = re.compile(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+))""", re.IGNORECASE)
MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}

NPPES_MONTHLY = re.compile(r"nppes_data_dissemination_([a-z]+)_(\d{4})_v2\.zip$", re.IGNORECASE)
NPPES_WEEKLY = re.compile(r"nppes_data_dissemination_(\d{6})_(\d{6})_weekly_v2\.zip$", re.IGNORECASE)


def links(page: str, base_url: str) -> list[str]:
    """Every link on the page as an absolute URL, in page order, without duplicates."""
    out: list[str] = []
    seen: set[str] = set()
    for match in HREF.finditer(page):
        raw = html.unescape(next(g for g in match.groups() if g is not None)).strip()
        if not raw or raw.startswith(("#", "mailto:", "javascript:")):
            continue
        url = urljoin(base_url, raw)
        if url not in seen:
            seen.add(url)
            out.append(url)
    return out


def file_name(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


@dataclass(frozen=True, order=True)
class NppesBundle:
    period_end: date  # the month's first day for monthly bundles; the week's last day for weekly ones
    period_start: date
    kind: str  # monthly | weekly
    url: str

    @property
    def name(self) -> str:
        return file_name(self.url)

    @property
    def version(self) -> str:
        """'2026-11' for a monthly bundle, '2026-11-10..2026-11-16' for a weekly one."""
        if self.kind == "monthly":
            return f"{self.period_start:%Y-%m}"
        return f"{self.period_start:%Y-%m-%d}..{self.period_end:%Y-%m-%d}"


def _mmddyy(text: str) -> date:
    return date(2000 + int(text[4:6]), int(text[0:2]), int(text[2:4]))


def classify_nppes(url: str) -> NppesBundle | None:
    name = file_name(url)
    if m := NPPES_WEEKLY.search(name):
        try:
            return NppesBundle(_mmddyy(m.group(2)), _mmddyy(m.group(1)), "weekly", url)
        except ValueError:
            return None
    if m := NPPES_MONTHLY.search(name):
        month = MONTHS.get(m.group(1).lower())
        if month:
            first = date(int(m.group(2)), month, 1)
            return NppesBundle(first, first, "monthly", url)
    return None


@dataclass
class NppesListing:
    monthly: list[NppesBundle]  # newest first
    weekly: list[NppesBundle]  # newest first

    @property
    def latest_monthly(self) -> NppesBundle:
        return self.monthly[0]

    def weekly_after(self, monthly: NppesBundle) -> list[NppesBundle]:
        """The weekly bundles that post-date a monthly bundle, oldest first (the order to apply them)."""
        return sorted(b for b in self.weekly if b.period_end >= monthly.period_start)


def newer_monthly(listing: NppesListing, known_version: str | None) -> NppesBundle | None:
    """The latest monthly bundle on the index page when it is newer than `known_version` (the newest
    monthly already fetched, 'YYYY-MM', or None when nothing was fetched yet); else None.

    Versions compare as 'YYYY-MM' strings, so an index page that still (or again) shows an older month
    than the one on disk is "nothing new", never a downgrade."""
    latest = listing.latest_monthly
    if known_version is None or latest.version > known_version.strip():
        return latest
    return None


def release_bundles(listing: NppesListing, monthly: NppesBundle) -> list[NppesBundle]:
    """What a refresh fetches for a new monthly bundle: the bundle itself, then the weekly bundles that
    post-date it (oldest first), as the download DAG does."""
    return [monthly, *listing.weekly_after(monthly)]


def nppes_bundles(page: str, page_url: str) -> NppesListing:
    """The V2 monthly and weekly bundles linked from the NPPES index page, newest first (sorted by the
    date in the name, not by page position). Deactivation reports and V1 files are ignored."""
    monthly, weekly = [], []
    for url in links(page, page_url):
        bundle = classify_nppes(url)
        if bundle is None:
            continue
        (monthly if bundle.kind == "monthly" else weekly).append(bundle)
    if not monthly:
        raise DownloadError(
            "no monthly NPPES V2 bundle linked (expected a link to NPPES_Data_Dissemination_<Month>_<YYYY>_V2.zip); "
            "pin one with the nppes_monthly_url param",
            source=page_url,
        )
    return NppesListing(sorted(set(monthly), reverse=True), sorted(set(weekly), reverse=True))


def cpt_archive(page: str, page_url: str) -> str:
    """The CMS physician fee schedule archive linked from the PFREV page: the seed's scoring (pfrev +10,
    'updated' +2, '/files/zip/' +1), first link winning ties."""
    candidates = [u for u in links(page, page_url) if urlsplit(u).path.lower().endswith(".zip")]
    if not candidates:
        raise DownloadError("no .zip link found for the CPT/HCPCS archive; pin one with the cpt_zip_urls param",
                            source=page_url)

    def score(url: str) -> int:
        low = url.lower()
        return 10 * ("pfrev" in low) + 2 * ("updated" in low) + ("/files/zip/" in low)

    return sorted(candidates, key=score, reverse=True)[0]


def matching_links(page: str, page_url: str, pattern: str) -> list[str]:
    """Links whose file name matches `pattern` (a regex, case-insensitive), in page order."""
    rx = re.compile(pattern, re.IGNORECASE)
    return [u for u in links(page, page_url) if rx.search(file_name(u))]
