-- Recipe 1: smart filtering on image metadata.
-- Select a research cohort from the headers alone: thin-slice (2.5 mm or less) chest CT
-- of patients aged 60 or over, scanned at 120 kV or less since 2019, one row per series
-- with what an analyst checks before pulling the pixels. No pixel is read.
-- Runs on the demo cohort (`make serve`, then `beeline -u jdbc:hive2://127.0.0.1:10000/default -f sql/examples/01_smart_filtering.sql`).

-- What is there: modalities, body parts and devices.
SELECT Modality, BodyPartExamined, Manufacturer, ManufacturerModelName,
       count(DISTINCT PatientID) AS patients, count(DISTINCT SeriesInstanceUID) AS series, count(*) AS images
FROM demo_images
WHERE _corrupt_record IS NULL
GROUP BY Modality, BodyPartExamined, Manufacturer, ManufacturerModelName
ORDER BY Modality, Manufacturer;

-- The cohort as a view: typed header columns filter directly (StudyDate is a DATE,
-- SliceThickness and KVP are numbers, ConvolutionKernel an array); age comes from the
-- clinical table, joined on PatientID.
CREATE OR REPLACE TEMPORARY VIEW thin_chest_ct AS
SELECT i.PatientID, i.StudyDate, i.SeriesInstanceUID, i.ProtocolName, i.KVP, i.SliceThickness,
       i.ConvolutionKernel[0] AS kernel, i.Rows, i.Columns, i.TransferSyntaxUID, i.path, p.age, p.sex
FROM demo_images i JOIN demo_patients p USING (PatientID)
WHERE i.Modality = 'CT'
  AND i.BodyPartExamined = 'CHEST'
  AND i.SliceThickness <= 2.5
  AND i.KVP <= 120
  AND i.StudyDate >= DATE'2019-01-01'
  AND p.age >= 60;

-- The key result: one row per selected series.
SELECT PatientID, SeriesInstanceUID, StudyDate, ProtocolName, KVP, SliceThickness, kernel, age,
       count(*) AS images
FROM thin_chest_ct
GROUP BY PatientID, SeriesInstanceUID, StudyDate, ProtocolName, KVP, SliceThickness, kernel, age
ORDER BY PatientID;
