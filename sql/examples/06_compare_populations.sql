-- Recipe 6: compare the risk of populations.
-- Do treated patients live longer? Kaplan-Meier curves per group, a log-rank test, and a
-- Cox model per site adjusted for the other covariates.

-- Median survival and 24-month survival per group.
SELECT treated, m.km.median AS median_months, km_survival(m.km, 24.0) AS survival_24_months, m.km.n AS patients
FROM (SELECT treated, km_fit(months, died) AS km FROM demo_patients GROUP BY treated) m
ORDER BY treated;

-- The same by smoking status.
SELECT smoker, m.km.median AS median_months, km_survival(m.km, 24.0) AS survival_24_months
FROM (SELECT smoker, km_fit(months, died) AS km FROM demo_patients GROUP BY smoker) m
ORDER BY smoker;

-- Adjusted hazard ratio of treatment at each site.
SELECT c.site, s.feature, round(s.hazard_ratio, 3) AS hazard_ratio, round(s.p, 4) AS p
FROM (SELECT site, coxph_fit(months, died, struct(age, smoker, tumor_mm, treated)) AS model
      FROM demo_patients GROUP BY site) c,
     LATERAL coxph_summary(c.model) s
WHERE s.feature = 'treated'
ORDER BY c.site;

-- The key result: the log-rank test of treated against untreated.
SELECT t.test.statistic AS statistic, t.test.p AS p, t.test.groups AS groups, t.test.events AS events
FROM (SELECT logrank_test(months, died, treated) AS test FROM demo_patients) t;
