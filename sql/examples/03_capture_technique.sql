-- Recipe 3: classify the image capture technique from device metadata.
-- Each chest CT of the demo was acquired with one of three protocols (LOW DOSE, STANDARD,
-- HIGH RES CHEST). Can the protocol be told from the acquisition attributes in the headers
-- (kV, tube current, exposure, slice thickness, reconstruction kernel)? Useful when
-- ProtocolName is missing or free text. One row per series (its first slice).

CREATE OR REPLACE TEMPORARY VIEW ct_series AS
SELECT SeriesInstanceUID, ProtocolName, KVP, XRayTubeCurrent, Exposure, SliceThickness,
       ConvolutionKernel[0] AS kernel, split_fraction(SeriesInstanceUID, 3) < 0.7 AS train
FROM demo_images
WHERE Modality = 'CT' AND InstanceNumber = 1 AND _corrupt_record IS NULL;

DROP TABLE IF EXISTS capture_models;

CREATE TABLE capture_models AS
SELECT random_forest_fit(ProtocolName, struct(KVP, XRayTubeCurrent, Exposure, SliceThickness, kernel),
                         map('trees', '50', 'seed', '1')) AS forest
FROM ct_series WHERE train;

-- Which attributes decide (impurity importance, most important first).
SELECT s.* FROM capture_models m, LATERAL random_forest_summary(m.forest) s;

-- Predictions on the held-out series: the 'label' type is an index into model.classes.
CREATE OR REPLACE TEMPORARY VIEW capture_predictions AS
SELECT c.ProtocolName AS protocol,
       m.forest.classes[int(random_forest_predict(m.forest, struct(c.KVP, c.XRayTubeCurrent, c.Exposure, c.SliceThickness, c.kernel), 'label'))] AS predicted
FROM ct_series c CROSS JOIN capture_models m
WHERE NOT c.train;

SELECT * FROM confusion_matrix(TABLE(SELECT protocol, predicted FROM capture_predictions)) ORDER BY label, predicted;

-- The key result: held-out accuracy and per-class scores.
SELECT e.m.accuracy AS accuracy, e.m.kappa AS kappa, e.m.macro_f1 AS macro_f1, e.m.n AS series, e.m.classes AS classes
FROM (SELECT multiclass_metrics(protocol, predicted) AS m FROM capture_predictions) e;
