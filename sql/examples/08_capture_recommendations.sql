-- Recipe 8: recommend capture settings by collaborative filtering.
-- Radiologists rate the quality of the CT series they read (1 to 5, demo_reads); each series
-- was captured with some settings (`capture`: protocol, kV, kernel, slice thickness).
-- Matrix factorisation of the reader x capture ratings predicts how each reader would rate
-- settings they have not seen, and recommends the best ones for each reader.

SELECT capture, count(*) AS reads, round(avg(quality), 2) AS mean_quality
FROM demo_reads GROUP BY capture ORDER BY mean_quality DESC;

DROP TABLE IF EXISTS capture_als;

CREATE TABLE capture_als AS
SELECT als_fit(reader, capture, quality, map('rank', '3', 'reg', '0.1', 'iterations', '15', 'seed', '0')) AS model
FROM demo_reads;

-- Predicted against given ratings.
SELECT e.m.rmse AS rmse, e.m.mae AS mae, e.m.n AS ratings
FROM (SELECT regression_metrics(r.quality, als_predict(a.model, r.reader, r.capture)) AS m
      FROM demo_reads r CROSS JOIN capture_als a) e;

-- The key result: the three best capture settings for every reader.
SELECT readers.reader, rec.rank, rec.item AS capture, round(rec.score, 2) AS predicted_quality
FROM (SELECT DISTINCT reader FROM demo_reads) readers
CROSS JOIN capture_als a,
LATERAL als_recommend(a.model, readers.reader, 3) rec
ORDER BY readers.reader, rec.rank;
