-- Recipe 4: image features from pixels, combined with patient metadata, to predict survival.
-- The demo's chest CTs show a tumour in the right lung. Measure it from the pixels: in the
-- right lung's region (an ellipse in patient coordinates: centre x = -60 mm, y = -5 mm,
-- semi-axes 45 x 70 mm), count the voxels denser than -400 HU (lung is about -850 HU);
-- the largest cross-section over the slices gives an equivalent diameter. Then fit a Cox
-- model with the measured diameter next to the clinical covariates.
-- dicom_pixels gives HU (the modality LUT applied); pixel k sits at row k div Columns and
-- column k % Columns, whose patient coordinates come from ImagePositionPatient and PixelSpacing.

CREATE OR REPLACE TEMPORARY VIEW tumour_sections AS
SELECT PatientID, InstanceNumber,
       size(filter(dicom_pixels(path), (hu, k) ->
            hu > -400
            AND pow((ImagePositionPatient[0] + (k % Columns) * PixelSpacing[1] + 60) / 45, 2)
              + pow((ImagePositionPatient[1] + (k div Columns) * PixelSpacing[0] + 5) / 70, 2) <= 1))
         * PixelSpacing[0] * PixelSpacing[1] AS area_mm2
FROM demo_images
WHERE Modality = 'CT' AND _corrupt_record IS NULL;

DROP TABLE IF EXISTS tumour_features;

CREATE TABLE tumour_features AS
SELECT PatientID, max(area_mm2) AS tumour_area_mm2, 2 * sqrt(max(area_mm2) / pi()) AS tumour_diameter_mm
FROM tumour_sections
GROUP BY PatientID;

-- How the measurement agrees with the clinical record.
SELECT corr(f.tumour_diameter_mm, p.tumor_mm) AS correlation, avg(f.tumour_diameter_mm - p.tumor_mm) AS mean_difference_mm,
       count(*) AS patients
FROM tumour_features f JOIN demo_patients p USING (PatientID);

DROP TABLE IF EXISTS image_cox;

CREATE TABLE image_cox AS
SELECT coxph_fit(p.months, p.died, struct(p.age, p.smoker, p.treated, f.tumour_diameter_mm)) AS model
FROM demo_patients p JOIN tumour_features f USING (PatientID);

-- The key result: hazard ratios with the image-derived tumour size (true log-HR per mm: 0.05).
SELECT s.* FROM image_cox m, LATERAL coxph_summary(m.model) s;
