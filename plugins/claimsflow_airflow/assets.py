"""The Assets that wire claimsflow's DAGs: each names a data set, not the task that writes it.

Producers emit an event with `extra` naming the file and its version; consumers schedule on them.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias

RAW_MEDICAID_SPENDING = Asset(name="raw_medicaid_spending", uri="x-claimsflow://raw/medicaid/spending")
RAW_NPPES = Asset(name="raw_nppes", uri="x-claimsflow://raw/nppes")
RAW_CPT_FALLBACK = Asset(name="raw_cpt_fallback", uri="x-claimsflow://raw/cpt/cpt_hcpcs_fallback")
RAW_NUCC_TAXONOMY = Asset(name="raw_nucc_taxonomy", uri="x-claimsflow://raw/nucc/taxonomy")
RAW_HOP_TEAMING = Asset(name="raw_hop_teaming", uri="x-claimsflow://raw/hop_teaming")
MAP_NPI = Asset(name="map_npi", uri="x-claimsflow://maps/npi")
MAP_HCPCS = Asset(name="map_hcpcs", uri="x-claimsflow://maps/hcpcs")
MEDICARE_RAW = Asset(name="medicare_raw", uri="x-claimsflow://medicare/raw")
# One Asset per ingested year (`medicare_raw_<year>`), emitted through this alias by the ingestion DAG.
MEDICARE_RAW_YEARS = AssetAlias(name="medicare_raw_years")
MEDICARE_MODEL = Asset(name="medicare_model", uri="x-claimsflow://medicare/model")


def medicare_raw_year(year: int) -> Asset:
    return Asset(name=f"medicare_raw_{int(year)}", uri=f"x-claimsflow://medicare/raw/{int(year)}")
HOP_EDGES = Asset(name="hop_edges_enriched", uri="x-claimsflow://hop/edges_enriched")
