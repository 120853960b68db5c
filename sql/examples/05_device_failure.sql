-- Recipe 5: device time to failure.
-- The CT fleet's service records (demo_devices): age in years, daily scans, months under
-- observation and whether the scanner failed. Which factors shorten a scanner's life, and
-- how long will each one last? A Cox model for the hazard ratios and an accelerated failure
-- time (Weibull) model for median times to failure.

SELECT site, count(*) AS devices, sum(failed) AS failures, round(avg(age_years), 1) AS mean_age_years
FROM demo_devices GROUP BY site ORDER BY site;

DROP TABLE IF EXISTS device_models;

CREATE TABLE device_models AS
SELECT coxph_fit(months, failed, struct(age_years, daily_scans)) AS cox
FROM demo_devices;

CREATE OR REPLACE TEMPORARY VIEW device_aft AS
SELECT aft_fit(months, failed, struct(age_years, daily_scans), map('distribution', 'weibull')) AS aft
FROM demo_devices;

-- Median months to failure of each scanner, most urgent first.
SELECT d.device_id, d.site, d.age_years, d.daily_scans,
       round(aft_predict(a.aft, struct(d.age_years, d.daily_scans), 'median'), 1) AS median_months_to_failure,
       round(coxph_predict(m.cox, struct(d.age_years, d.daily_scans), 'survival', 12.0), 3) AS survives_a_year
FROM demo_devices d CROSS JOIN device_models m CROSS JOIN device_aft a
WHERE d.failed = 0
ORDER BY median_months_to_failure
LIMIT 10;

-- The key result: log hazard ratios with their confidence intervals (truth: age_years 0.15, daily_scans 0.03).
SELECT s.* FROM device_models m, LATERAL coxph_summary(m.cox) s;
