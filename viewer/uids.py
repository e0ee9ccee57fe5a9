"""The UID root under which Readerboard makes every DICOM UID it mints (demo series, NIfTI imports, exports)."""

READERBOARD_UID_ROOT = "1.2.826.0.1.3680043.10.1427."  # pydicom's org root with our own branch
