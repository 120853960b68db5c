-- Run by `dicomsql serve --bootstrap sql/bootstrap.sql` (what `make serve` does) once the
-- served tables exist and before clients connect: everything here is in the server's
-- session, so every JDBC client sees it.
--
-- Variables (dicomsql serve --var NAME=VALUE):
--   ${images}  the table of DICOM files the views read (default: the first --table, or
--              demo_images when serving the demo)

-- Helper functions written in SQL: what needs no Python is a Spark SQL function.

CREATE OR REPLACE TEMPORARY FUNCTION person_name(name STRING)
RETURNS STRING
COMMENT 'A DICOM person name (Family^Given^Middle^Prefix^Suffix) as "Prefix Given Middle Family Suffix"'
RETURN nullif(trim(regexp_replace(concat_ws(' ',
    split_part(name, '^', 4), split_part(name, '^', 2), split_part(name, '^', 3),
    split_part(name, '^', 1), split_part(name, '^', 5)), ' +', ' ')), '');

CREATE OR REPLACE TEMPORARY FUNCTION hu_tissue(hu DOUBLE)
RETURNS STRING
COMMENT 'The tissue a CT value in Hounsfield units usually is: air, lung, fat, fluid, soft tissue, bone'
RETURN CASE
    WHEN hu IS NULL THEN NULL
    WHEN hu < -900 THEN 'air'
    WHEN hu < -500 THEN 'lung'
    WHEN hu < -30 THEN 'fat'
    WHEN hu < 20 THEN 'fluid'
    WHEN hu < 300 THEN 'soft tissue'
    ELSE 'bone'
END;

CREATE OR REPLACE TEMPORARY FUNCTION dicom_timestamp(day DATE, time STRING)
RETURNS TIMESTAMP
COMMENT 'A DICOM date (DA, a DATE column) and time (TM, HHMMSS.FFFFFF, parts may be left out) as one TIMESTAMP'
RETURN make_timestamp(year(day), month(day), day(day),
    coalesce(try_cast(substr(time, 1, 2) AS INT), 0),
    coalesce(try_cast(nullif(substr(time, 3, 2), '') AS INT), 0),
    coalesce(try_cast(nullif(substr(time, 5), '') AS DECIMAL(8, 6)), 0));

-- Views over the images: series and studies, one row each, and the files that did not read.

CREATE OR REPLACE TEMPORARY VIEW series AS
SELECT SeriesInstanceUID, first(StudyInstanceUID) AS StudyInstanceUID, first(PatientID) AS PatientID,
       first(Modality) AS Modality, first(BodyPartExamined) AS BodyPartExamined,
       first(SeriesDescription) AS SeriesDescription, first(Manufacturer) AS Manufacturer,
       first(ManufacturerModelName) AS ManufacturerModelName, min(StudyDate) AS StudyDate,
       count(*) AS images, max(Rows) AS Rows, max(Columns) AS Columns,
       min(SliceThickness) AS SliceThickness, sum(size) AS bytes
FROM ${images}
WHERE _corrupt_record IS NULL AND SeriesInstanceUID IS NOT NULL
GROUP BY SeriesInstanceUID;

CREATE OR REPLACE TEMPORARY VIEW studies AS
SELECT StudyInstanceUID, first(PatientID) AS PatientID, min(StudyDate) AS StudyDate, first(StudyDescription) AS StudyDescription,
       collect_set(Modality) AS modalities, count(DISTINCT SeriesInstanceUID) AS series, count(*) AS images
FROM ${images}
WHERE _corrupt_record IS NULL AND StudyInstanceUID IS NOT NULL
GROUP BY StudyInstanceUID;

CREATE OR REPLACE TEMPORARY VIEW unreadable_files AS
SELECT path, size, modificationTime, _corrupt_record AS error
FROM ${images}
WHERE _corrupt_record IS NOT NULL;
