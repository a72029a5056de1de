"""Deciding whether the NPPES index page shows a newer monthly bundle than the one already fetched."""

from __future__ import annotations

from include.download import discover

PAGE_URL = "https://download.cms.gov/nppes/NPI_Files.html"
PAGE = """
<a href="./NPPES_Data_Dissemination_November_2026_V2.zip">Nov</a>
<a href='NPPES_Data_Dissemination_October_2026_V2.zip'>Oct</a>
<a href="NPPES_Data_Dissemination_110226_110826_Weekly_V2.zip">w1</a>
<a href="NPPES_Data_Dissemination_110926_111526_Weekly_V2.zip">w2</a>
<a href="NPPES_Data_Dissemination_102626_110126_Weekly_V2.zip">w0</a>
<a href="NPPES_Data_Dissemination_101926_102526_Weekly_V2.zip">old</a>
<a href="NPPES_Deactivated_NPI_Report_111126_V2.zip">deactivated</a>
"""


def listing() -> discover.NppesListing:
    return discover.nppes_bundles(PAGE, PAGE_URL)


def test_nothing_fetched_yet_means_the_latest_is_new():
    bundle = discover.newer_monthly(listing(), None)
    assert bundle is not None and bundle.version == "2026-11" and bundle.kind == "monthly"


def test_an_older_known_month_means_the_latest_is_new():
    assert discover.newer_monthly(listing(), "2026-10").version == "2026-11"
    assert discover.newer_monthly(listing(), "2025-12").version == "2026-11"


def test_the_same_or_a_newer_known_month_means_nothing_new():
    assert discover.newer_monthly(listing(), "2026-11") is None
    assert discover.newer_monthly(listing(), "2026-12") is None  # the page lags behind what was fetched
    assert discover.newer_monthly(listing(), " 2026-11 ") is None


def test_release_bundles_are_the_monthly_then_the_weekly_ones_after_it_oldest_first():
    page = listing()
    bundles = discover.release_bundles(page, page.latest_monthly)
    assert [b.kind for b in bundles] == ["monthly", "weekly", "weekly", "weekly"]
    assert [b.version for b in bundles[1:]] == ["2026-10-26..2026-11-01", "2026-11-02..2026-11-08",
                                                  "2026-11-09..2026-11-15"]
    assert bundles[0].url == "https://download.cms.gov/nppes/NPPES_Data_Dissemination_November_2026_V2.zip"
