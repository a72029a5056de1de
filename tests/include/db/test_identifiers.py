from __future__ import annotations

import pytest

from include.common.errors import InvalidIdentifier
from include.db.postgres import identifier_from_filename, read_sql, table_identifier, validate_identifier


@pytest.mark.parametrize("name", ["bene_id", "_x", "mbsf_ab_2015", "a" * 63])
def test_plain_identifiers_pass(name):
    assert validate_identifier(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Bene_ID", "1999_file", 'x"; DROP TABLE medicare.beneficiaries; --', "a b", "a-b", "é", "a" * 64, None],
)
def test_unsafe_identifiers_are_refused(name):
    with pytest.raises(InvalidIdentifier):
        validate_identifier(name)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("MBSF_AB_2015.dat", "mbsf_ab_2015"),
        ("/data/raw/medicare/2012/INPATIENT CLAIMS (2012).fts", "inpatient_claims_2012"),
        ("1999_medpar.sas7bdat", "t_1999_medpar"),
        ("npidata_pfile_20050523-20261109.csv", "npidata_pfile_20050523_20261109"),
        ('evil"; drop table x; --.csv', "evil_drop_table_x"),
    ],
)
def test_table_names_from_file_names(filename, expected):
    assert identifier_from_filename(filename) == expected


def test_long_file_names_keep_a_distinguishing_hash():
    a = identifier_from_filename("x" * 80 + "_part_a.dat")
    b = identifier_from_filename("x" * 80 + "_part_b.dat")
    assert len(a) == len(b) == 63
    assert a != b


def test_names_with_nothing_usable_are_refused():
    with pytest.raises(InvalidIdentifier, match="cannot derive"):
        identifier_from_filename("---.csv")


def test_qualified_names_are_quoted(pg):
    assert table_identifier(("medicare_raw", "mbsf_2015")).as_string(pg) == '"medicare_raw"."mbsf_2015"'
    with pytest.raises(InvalidIdentifier):
        table_identifier(("medicare_raw", "mbsf; drop"))


def test_sql_files_cannot_be_read_outside_the_sql_folder():
    assert "claimsflow_meta" in read_sql("meta/create_schema.sql")
    with pytest.raises(ValueError):
        read_sql("../db/postgres.py")
    with pytest.raises(ValueError):
        read_sql("../../requirements.txt")
