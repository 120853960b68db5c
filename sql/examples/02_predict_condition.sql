-- Recipe 2: predict the presence of a condition from patient metadata.
-- The condition: death within follow-up (`died`), from age, smoking, tumour size and sex.
-- A reproducible 70/30 split by patient, three classifiers fitted on the training rows
-- (logistic regression with inference, a random forest, naive Bayes), stored as model rows,
-- and evaluated on the held-out rows.

CREATE OR REPLACE TEMPORARY VIEW patients_split AS
SELECT *, split_fraction(PatientID, 42) < 0.7 AS train FROM demo_patients;

DROP TABLE IF EXISTS died_models;

CREATE TABLE died_models AS
SELECT logreg_fit(died, struct(age, smoker, tumor_mm, sex)) AS logreg
FROM patients_split WHERE train;

-- One aggregate of this kind per query: the forest and naive Bayes join the table by name.
CREATE OR REPLACE TEMPORARY VIEW died_forest AS
SELECT random_forest_fit(died, struct(age, smoker, tumor_mm, sex), map('trees', '100', 'max_depth', '4', 'seed', '7')) AS forest
FROM patients_split WHERE train;

CREATE OR REPLACE TEMPORARY VIEW died_bayes AS
SELECT naive_bayes_fit(died, struct(age, smoker, tumor_mm, sex)) AS bayes
FROM patients_split WHERE train;

-- The logistic model's coefficients with odds ratios, standard errors and p-values.
SELECT s.* FROM died_models m, LATERAL logreg_summary(m.logreg) s;

-- Scores of the held-out patients.
CREATE OR REPLACE TEMPORARY VIEW died_scores AS
SELECT p.PatientID, p.died,
       logreg_predict(m.logreg, struct(p.age, p.smoker, p.tumor_mm, p.sex)) AS by_logreg,
       random_forest_predict(f.forest, struct(p.age, p.smoker, p.tumor_mm, p.sex)) AS by_forest,
       naive_bayes_predict(b.bayes, struct(p.age, p.smoker, p.tumor_mm, p.sex)) AS by_bayes
FROM patients_split p CROSS JOIN died_models m CROSS JOIN died_forest f CROSS JOIN died_bayes b
WHERE NOT p.train;

-- The key result: AUC and accuracy of each classifier on the held-out patients.
SELECT 'logistic regression' AS model, e.m.auc AS auc, e.m.accuracy AS accuracy, e.m.n AS patients
FROM (SELECT binary_metrics(died, by_logreg) AS m FROM died_scores) e
UNION ALL
SELECT 'random forest', e.m.auc, e.m.accuracy, e.m.n FROM (SELECT binary_metrics(died, by_forest) AS m FROM died_scores) e
UNION ALL
SELECT 'naive Bayes', e.m.auc, e.m.accuracy, e.m.n FROM (SELECT binary_metrics(died, by_bayes) AS m FROM died_scores) e;
