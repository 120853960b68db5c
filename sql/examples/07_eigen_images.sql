-- Recipe 7: eigen-images of a cohort, and projecting new images onto them.
-- Resample every chest CT slice to 32 x 32, window it to the lung preset (values in
-- [0, 1]), fit a PCA over the cohort with the slices of 80% of the patients, store the
-- model as a row, then project the held-out patients' slices onto the components and
-- reconstruct them. (For large cohorts, cov_partials + cov_merge + pca_from_cov do the same
-- in one distributed pass; pca_fit streams a group through one worker.)

CREATE OR REPLACE TEMPORARY VIEW ct_vectors AS
SELECT PatientID, InstanceNumber, split_fraction(PatientID, 11) < 0.8 AS train,
       dicom_window(image_resize(path, 32, 32), 'lung') AS vector
FROM demo_images
WHERE Modality = 'CT' AND _corrupt_record IS NULL;

DROP TABLE IF EXISTS ct_eigen;

CREATE TABLE ct_eigen AS
SELECT pca_fit(vector, 8) AS model FROM ct_vectors WHERE train;

-- How much of the variance the components explain.
SELECT e.model.n AS images, e.model.dimension AS pixels, e.model.method AS method,
       e.model.explained_variance_ratio AS explained_variance_ratio
FROM ct_eigen e;

-- The key result: held-out slices projected on the eigen-images and reconstructed;
-- the reconstruction error against the image's own variance.
SELECT v.PatientID, v.InstanceNumber,
       pca_project(e.model, v.vector) AS scores,
       aggregate(zip_with(v.vector, pca_reconstruct(e.model, pca_project(e.model, v.vector)), (a, b) -> (a - b) * (a - b)),
                 0D, (acc, x) -> acc + x) / size(v.vector) AS reconstruction_mse
FROM ct_vectors v CROSS JOIN ct_eigen e
WHERE NOT v.train
ORDER BY v.PatientID, v.InstanceNumber;
