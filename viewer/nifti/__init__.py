"""NIfTI volumes and label maps in and out of DICOM series.

Research datasets (ATLAS, BraTS, MONAI and nnU-Net tutorials) arrive as `.nii` / `.nii.gz`.
`reading` loads and refuses bad files, `geometry` is the pure RAS/LPS and slice-layout core,
`to_dicom` writes one single-frame DICOM instance per slice for the normal import,
`from_dicom` turns a stored series (and per-slice masks) back into NIfTI, `labels` checks a label
map against its image and splits it into per-slice masks keyed by SOP Instance UID, and
`importing` is the glue `viewer.services.dicom_import` calls. Nothing here touches the database.
"""
