-- The baseline for `make bench`: what a data engineer would write by hand in one DuckDB script.
-- Same inputs (the staged Parquet), same joins (spine, spells, rescue linkage, record linkage),
-- written to an encrypted DuckDB file like the warehouse; none of the pipeline's bookkeeping
-- (per-delivery loads and supersession, key checks, quality report, marts, audit).
-- {staging} is replaced with the staging folder. Birth windows can narrow to a date of birth, so
-- they stay in TEMP tables, as in the pipeline.

CREATE TABLE sus_apc_spells AS SELECT *, regexp_extract(filename, '([^/]+)__v\d+\.parquet$', 1) AS _period FROM read_parquet('{staging}/sus_apc/sus_apc_spells/*.parquet', filename = true, union_by_name = true);
CREATE TABLE sus_op_attendances AS SELECT *, regexp_extract(filename, '([^/]+)__v\d+\.parquet$', 1) AS _period FROM read_parquet('{staging}/sus_op/sus_op_attendances/*.parquet', filename = true, union_by_name = true);
CREATE TABLE ecds_attendances AS SELECT *, regexp_extract(filename, '([^/]+)__v\d+\.parquet$', 1) AS _period FROM read_parquet('{staging}/ecds/ecds_attendances/*.parquet', filename = true, union_by_name = true);
CREATE TABLE csds_contacts AS SELECT *, regexp_extract(filename, '([^/]+)__v\d+\.parquet$', 1) AS _period FROM read_parquet('{staging}/csds/csds_contacts/*.parquet', filename = true, union_by_name = true);
CREATE TABLE mhsds_contacts AS SELECT *, regexp_extract(filename, '([^/]+)__v\d+\.parquet$', 1) AS _period FROM read_parquet('{staging}/mhsds/mhsds_contacts/*.parquet', filename = true, union_by_name = true);
CREATE TABLE gp_registrations AS SELECT *, regexp_extract(filename, '([^/]+)__v\d+\.parquet$', 1) AS _period FROM read_parquet('{staging}/gp/gp_registrations/*.parquet', filename = true, union_by_name = true);
CREATE TABLE gp_ltc_diagnoses AS SELECT *, regexp_extract(filename, '([^/]+)__v\d+\.parquet$', 1) AS _period FROM read_parquet('{staging}/gp/gp_ltc_diagnoses/*.parquet', filename = true, union_by_name = true);
CREATE TABLE gp_prescribing AS SELECT *, regexp_extract(filename, '([^/]+)__v\d+\.parquet$', 1) AS _period FROM read_parquet('{staging}/gp/gp_prescribing/*.parquet', filename = true, union_by_name = true);
CREATE TABLE asc_clients AS SELECT *, regexp_extract(filename, '([^/]+)__v\d+\.parquet$', 1) AS _period FROM read_parquet('{staging}/asc/asc_clients/*.parquet', filename = true, union_by_name = true);
CREATE TABLE asc_services AS SELECT *, regexp_extract(filename, '([^/]+)__v\d+\.parquet$', 1) AS _period FROM read_parquet('{staging}/asc/asc_services/*.parquet', filename = true, union_by_name = true);
CREATE TABLE opted_out AS SELECT person_pid FROM read_parquet('{staging}/ndoo/ndoo_list/*.parquet') UNION SELECT person_pid FROM read_parquet('{staging}/type1_optout/type1_optout_list/*.parquet');

CREATE TABLE person_events AS
SELECT person_pid, 'sus_apc_spells' AS source, admission_date AS event_date, age, gender, postcode_sector, lsoa21cd, ward_code, imd_decile, gp_practice_code AS practice_code FROM sus_apc_spells WHERE person_pid IS NOT NULL
UNION ALL SELECT person_pid, 'sus_op_attendances', appointment_date, age, gender, postcode_sector, lsoa21cd, ward_code, imd_decile, gp_practice_code FROM sus_op_attendances WHERE person_pid IS NOT NULL
UNION ALL SELECT person_pid, 'ecds_attendances', arrival_date, age, gender, postcode_sector, lsoa21cd, ward_code, imd_decile, gp_practice_code FROM ecds_attendances WHERE person_pid IS NOT NULL
UNION ALL SELECT person_pid, 'csds_contacts', contact_date, age, gender, postcode_sector, lsoa21cd, ward_code, imd_decile, NULL FROM csds_contacts WHERE person_pid IS NOT NULL
UNION ALL SELECT person_pid, 'mhsds_contacts', contact_date, age, gender, postcode_sector, lsoa21cd, ward_code, imd_decile, NULL FROM mhsds_contacts WHERE person_pid IS NOT NULL
UNION ALL SELECT person_pid, 'gp_registrations', extract_date, age, gender, postcode_sector, lsoa21cd, ward_code, imd_decile, practice_code FROM gp_registrations WHERE person_pid IS NOT NULL
UNION ALL SELECT person_pid, 'asc_clients', extract_date, age, gender, postcode_sector, lsoa21cd, ward_code, imd_decile, NULL FROM asc_clients WHERE person_pid IS NOT NULL;

CREATE TABLE spine AS
SELECT e.person_pid,
       arg_max(age, event_date) FILTER (WHERE age IS NOT NULL) AS age,
       coalesce(arg_max(gender, event_date) FILTER (WHERE gender IN ('1', '2')), arg_max(gender, event_date)) AS gender,
       arg_max(lsoa21cd, event_date) FILTER (WHERE lsoa21cd IS NOT NULL) AS lsoa21cd,
       arg_max(ward_code, event_date) FILTER (WHERE lsoa21cd IS NOT NULL) AS ward_code,
       arg_max(imd_decile, event_date) FILTER (WHERE lsoa21cd IS NOT NULL) AS imd_decile,
       coalesce(any_value(r.practice), arg_max(practice_code, event_date) FILTER (WHERE practice_code IS NOT NULL)) AS registered_practice,
       count(DISTINCT gender) FILTER (WHERE gender IN ('1', '2')) > 1 AS gender_conflict,
       coalesce(max(year(event_date) - age) - min(year(event_date) - age), 0) > 1 AS age_conflict
FROM person_events e
LEFT JOIN (SELECT person_pid, arg_max(practice_code, registration_start) AS practice FROM gp_registrations
           WHERE person_pid IS NOT NULL AND registration_end IS NULL GROUP BY person_pid) r USING (person_pid)
GROUP BY e.person_pid;

CREATE TABLE apc_spells AS
SELECT DISTINCT ON (spell_id) person_pid, spell_id, admission_date, discharge_date,
       admission_method IN ('21', '22', '23', '24', '25', '2A', '2B', '2C', '2D', '28') AS emergency
FROM sus_apc_spells;

CREATE TEMP TABLE known AS
SELECT person_pid, postcode_hash, gender, d - to_years(age + 1) + INTERVAL 1 DAY AS born_after, d - to_years(age) AS born_by
FROM (SELECT person_pid, postcode_hash, gender, admission_date AS d, age FROM sus_apc_spells
      UNION ALL SELECT person_pid, postcode_hash, gender, appointment_date, age FROM sus_op_attendances
      UNION ALL SELECT person_pid, postcode_hash, gender, arrival_date, age FROM ecds_attendances
      UNION ALL SELECT person_pid, postcode_hash, gender, contact_date, age FROM csds_contacts
      UNION ALL SELECT person_pid, postcode_hash, gender, contact_date, age FROM mhsds_contacts
      UNION ALL SELECT person_pid, postcode_hash, gender, extract_date, age FROM gp_registrations
      UNION ALL SELECT person_pid, postcode_hash, gender, extract_date, age FROM asc_clients)
WHERE person_pid IS NOT NULL AND age IS NOT NULL;

CREATE TEMP TABLE person_keys AS
SELECT DISTINCT k.person_pid, k.postcode_hash, k.gender,
       CASE WHEN w.a <= w.b THEN w.a ELSE w.wa END AS born_after, CASE WHEN w.a <= w.b THEN w.b ELSE w.wb END AS born_by
FROM known k JOIN (SELECT person_pid, max(born_after) AS a, min(born_by) AS b, min(born_after) AS wa, max(born_by) AS wb
                   FROM known GROUP BY person_pid) w USING (person_pid)
WHERE k.postcode_hash IS NOT NULL AND k.gender IN ('1', '2');

CREATE TEMP TABLE practices AS
SELECT person_pid, list(DISTINCT practice_code) AS practices FROM (
    SELECT person_pid, practice_code FROM person_events WHERE practice_code IS NOT NULL
    UNION ALL SELECT person_pid, registered_practice FROM spine WHERE registered_practice IS NOT NULL)
GROUP BY person_pid;

CREATE TEMP TABLE unlinked AS
SELECT source, _period, source_row, postcode_hash, gender, d - to_years(age + 1) + INTERVAL 1 DAY AS born_after,
       d - to_years(age) AS born_by, practice_code
FROM (SELECT 'sus_apc_spells' AS source, _period, source_row, postcode_hash, gender, admission_date AS d, age, gp_practice_code AS practice_code FROM sus_apc_spells WHERE person_pid IS NULL
      UNION ALL SELECT 'sus_op_attendances', _period, source_row, postcode_hash, gender, appointment_date, age, gp_practice_code FROM sus_op_attendances WHERE person_pid IS NULL
      UNION ALL SELECT 'ecds_attendances', _period, source_row, postcode_hash, gender, arrival_date, age, gp_practice_code FROM ecds_attendances WHERE person_pid IS NULL
      UNION ALL SELECT 'csds_contacts', _period, source_row, postcode_hash, gender, contact_date, age, NULL FROM csds_contacts WHERE person_pid IS NULL
      UNION ALL SELECT 'mhsds_contacts', _period, source_row, postcode_hash, gender, contact_date, age, NULL FROM mhsds_contacts WHERE person_pid IS NULL
      UNION ALL SELECT 'gp_registrations', _period, source_row, postcode_hash, gender, extract_date, age, practice_code FROM gp_registrations WHERE person_pid IS NULL
      UNION ALL SELECT 'asc_clients', _period, source_row, postcode_hash, gender, extract_date, age, NULL FROM asc_clients WHERE person_pid IS NULL);

CREATE TABLE rescued AS
SELECT u.source, u._period, u.source_row, any_value(k.person_pid) AS person_pid,
       CASE WHEN bool_or(k.born_after >= u.born_after AND k.born_by <= u.born_by) THEN 'high' ELSE 'medium' END AS confidence
FROM unlinked u
JOIN person_keys k ON k.postcode_hash = u.postcode_hash AND k.gender = u.gender
     AND k.born_after <= u.born_by AND k.born_by >= u.born_after
LEFT JOIN practices p ON p.person_pid = k.person_pid
WHERE u.gender IN ('1', '2') AND (u.practice_code IS NULL OR p.practices IS NULL OR list_contains(p.practices, u.practice_code))
GROUP BY ALL
HAVING count(DISTINCT k.person_pid) = 1 AND any_value(k.person_pid) NOT IN (SELECT person_pid FROM opted_out);

CREATE TABLE record_linkage AS
SELECT r.source, r._period, r.source_row, r.nhs_number_status, coalesce(r.person_pid, x.person_pid) AS person_pid,
       CASE WHEN r.person_pid IS NOT NULL THEN 'deterministic' WHEN x.person_pid IS NOT NULL THEN 'rescued' ELSE 'unlinked' END AS link_status
FROM (SELECT 'sus_apc_spells' AS source, _period, source_row, nhs_number_status, person_pid FROM sus_apc_spells
      UNION ALL SELECT 'sus_op_attendances', _period, source_row, nhs_number_status, person_pid FROM sus_op_attendances
      UNION ALL SELECT 'ecds_attendances', _period, source_row, nhs_number_status, person_pid FROM ecds_attendances
      UNION ALL SELECT 'csds_contacts', _period, source_row, nhs_number_status, person_pid FROM csds_contacts
      UNION ALL SELECT 'mhsds_contacts', _period, source_row, nhs_number_status, person_pid FROM mhsds_contacts
      UNION ALL SELECT 'gp_registrations', _period, source_row, nhs_number_status, person_pid FROM gp_registrations
      UNION ALL SELECT 'gp_ltc_diagnoses', _period, source_row, nhs_number_status, person_pid FROM gp_ltc_diagnoses
      UNION ALL SELECT 'gp_prescribing', _period, source_row, nhs_number_status, person_pid FROM gp_prescribing
      UNION ALL SELECT 'asc_clients', _period, source_row, nhs_number_status, person_pid FROM asc_clients) r
LEFT JOIN rescued x ON x.source = r.source AND x._period = r._period AND x.source_row = r.source_row;

CHECKPOINT;
