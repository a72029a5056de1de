"""Fixtures of the map tests."""

from __future__ import annotations

import pytest

from include.maps import cache

MAPS_TABLES = "maps.npi_cache, maps.hcpcs_cache, maps.npi_wanted, maps.hcpcs_wanted"


@pytest.fixture
def maps_db(pg):
    """The test database with empty map caches and wanted sets (emptied again afterwards)."""
    cache.ensure_schema(pg)
    pg.execute(f"TRUNCATE {MAPS_TABLES}")
    pg.commit()
    yield pg
    pg.rollback()
    pg.execute(f"TRUNCATE {MAPS_TABLES}")
    pg.commit()
