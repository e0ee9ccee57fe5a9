"""Exports of a task's reads and consensus: CSV, DICOM SR (TID 1500), DICOM SEG, a zip bundle and
training datasets (nnU-Net, MONAI, DeepLesion CSV).

Callers use `run_export` (an ExportJob) or `export_to_path` (a file) from service.py.
"""

from annotations.exports.service import ExportResult, check_exportable, export_filename, export_to_path, run_export

__all__ = ["ExportResult", "check_exportable", "export_filename", "export_to_path", "run_export"]
