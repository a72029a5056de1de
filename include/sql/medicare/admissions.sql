-- medicare.admissions and medicare_audit.admissions from the federated view medicare.ip. Every
-- record lands in exactly one of the two. Checks, in the seed's order:
--   PRIMARY KEY  bene_id, year, state, admission or discharge date missing;
--   FOREIGN KEY  no enrollment of the beneficiary in that state and year;
--   DUPLICATE    the same (bene_id, year, state, admission_date, discharge_date) again: the first
--                copy (by file, record) is kept, marked quality = 'DUPLICATE', the others audited
--                with the file and record of the kept one.
CREATE TEMPORARY TABLE ip_checked ON COMMIT DROP AS
SELECT c.*,
       CASE WHEN c.bene_id IS NULL OR c.year IS NULL OR c.state IS NULL
                 OR c.admission_date IS NULL OR c.discharge_date IS NULL THEN 'PRIMARY KEY'
            WHEN NOT c.enrolled THEN 'FOREIGN KEY'
            WHEN c.copy > 1 THEN 'DUPLICATE'
            ELSE 'OK' END AS reason
  FROM (
    SELECT i.*,
           e.bene_id IS NOT NULL AS enrolled,
           row_number() OVER w AS copy,
           count(*) OVER k AS copies,  -- the whole partition (w's ORDER BY would make it a running count)
           first_value(i.source_file) OVER w AS kept_file,
           first_value(i.record_number) OVER w AS kept_record
      FROM {medicare}.ip i
      LEFT JOIN {medicare}.enrollments e ON e.bene_id = i.bene_id AND e.year = i.year AND e.state = i.state
    WINDOW k AS (PARTITION BY i.bene_id, i.year, i.state, i.admission_date, i.discharge_date),
           w AS (k ORDER BY i.source_table, i.source_file, i.record_number)
  ) c;

CREATE TABLE {medicare}.admissions AS
SELECT bene_id, source_table, source_file, record_number, year, state, ssa2, fips2, zip, zip4,
       admission_date, discharge_date, adm_day_of_week, dschrgcd, dschrg_dstntn_cd, admsn_type_cd,
       src_admsn_cd, diagnoses[1] AS primary_diagnosis, diagnoses, los_day_cnt, drg_price_amt,
       drg_outlier_pmt_amt, pass_thru_amt, mdcr_pmt_amt, bene_blood_ddctbl_amt, bene_prmry_pyr_amt,
       bene_ip_ddctbl_amt, bene_pta_coinsrnc_amt,
       CASE WHEN copies > 1 THEN 'DUPLICATE' ELSE 'PASS' END AS quality
  FROM ip_checked
 WHERE reason = 'OK';
ALTER TABLE {medicare}.admissions
    ADD COLUMN admission_year integer GENERATED ALWAYS AS (extract(year FROM admission_date)::integer) STORED,
    ADD COLUMN state_iso text GENERATED ALWAYS AS ('US-' || state) STORED,
    ADD COLUMN bene hll_hashval GENERATED ALWAYS AS (hll_hash_text(bene_id)) STORED,
    ADD COLUMN pd_hll_hash hll_hashval GENERATED ALWAYS AS (hll_hash_text(primary_diagnosis)) STORED,
    ADD COLUMN icd_hll hll GENERATED ALWAYS AS ({medicare}.hll_of(diagnoses)) STORED,
    ADD PRIMARY KEY (bene_id, year, state, admission_date, discharge_date),
    ADD FOREIGN KEY (bene_id, year, state) REFERENCES {medicare}.enrollments (bene_id, year, state);
CREATE INDEX adm_ys_idx ON {medicare}.admissions (state, year);
CREATE INDEX adm_ys_iso_idx ON {medicare}.admissions (state_iso, year) INCLUDE (bene);
CREATE INDEX adm_ysdz_idx ON {medicare}.admissions (state, year, zip, primary_diagnosis);
ANALYZE {medicare}.admissions;

CREATE TABLE {audit}.admissions AS
SELECT bene_id, source_table, source_file, record_number, year, state, ssa2, fips2, zip, zip4,
       admission_date, discharge_date, adm_day_of_week, dschrgcd, dschrg_dstntn_cd, admsn_type_cd,
       src_admsn_cd, diagnoses[1] AS primary_diagnosis, diagnoses, los_day_cnt,
       extract(year FROM admission_date)::integer AS admission_year,
       'US-' || state AS state_iso,
       hll_hash_text(bene_id) AS bene,
       hll_hash_text(diagnoses[1]) AS pd_hll_hash,
       {medicare}.hll_of(diagnoses) AS icd_hll,
       reason,
       CASE reason
           WHEN 'PRIMARY KEY' THEN concat_ws(', ',
                CASE WHEN bene_id IS NULL THEN 'no bene_id' END,
                CASE WHEN year IS NULL THEN 'no year' END,
                CASE WHEN state IS NULL THEN 'unknown state code ' || coalesce(quote_literal(ssa2), 'NULL') END,
                CASE WHEN admission_date IS NULL THEN 'no admission date' END,
                CASE WHEN discharge_date IS NULL THEN 'no discharge date' END)
           WHEN 'FOREIGN KEY' THEN 'no enrollment in ' || state || ' in ' || year
           ELSE 'duplicate of ' || kept_file || ' record ' || kept_record
       END AS detail,
       CASE WHEN reason = 'DUPLICATE' THEN kept_file END AS kept_file,
       CASE WHEN reason = 'DUPLICATE' THEN kept_record END AS kept_record
  FROM ip_checked
 WHERE reason <> 'OK';
CREATE INDEX ON {audit}.admissions (reason);
CREATE INDEX ON {audit}.admissions (bene_id);
ANALYZE {audit}.admissions;
