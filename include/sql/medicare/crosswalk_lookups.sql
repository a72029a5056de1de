-- Lookups derived from the crosswalks once per run, so the per-record joins stay simple.
-- The county of a ZIP: the one with the largest share of residences (ties: the lowest FIPS code);
-- `exact` when the ZIP lies in one county only; `fips3_list` every county it touches.
CREATE TABLE {medicare}.zip_fips AS
SELECT zip,
       (array_agg(fips2 ORDER BY res_ratio DESC, fips2, fips3))[1] AS fips2,
       (array_agg(fips3 ORDER BY res_ratio DESC, fips2, fips3))[1] AS fips3,
       count(*) = 1 AS exact,
       string_agg(DISTINCT fips3, ',' ORDER BY fips3) AS fips3_list
  FROM {medicare}.zip_county
 GROUP BY zip;
ALTER TABLE {medicare}.zip_fips ADD PRIMARY KEY (zip);
ANALYZE {medicare}.us_states, {medicare}.ssa_fips, {medicare}.zip_county, {medicare}.zip_fips;
