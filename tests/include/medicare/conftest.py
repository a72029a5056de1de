"""Fixtures of the Medicare ingestion tests."""

from __future__ import annotations

import pytest

from include.medicare import ingest


@pytest.fixture
def raw_db(pg):
    """An empty medicare_raw schema and no medicare_raw load records."""
    ingest.ensure_schema(pg)
    pg.execute("DROP SCHEMA medicare_raw CASCADE")
    pg.execute("DELETE FROM claimsflow_meta.load_manifest WHERE dataset = 'medicare_raw'")
    pg.commit()
    ingest.ensure_schema(pg)
    yield pg
    pg.rollback()
