"""DICOM records: collections, studies, series and instances keyed by their UIDs.

They hold what the viewer, consensus and exports need without re-reading the
files: geometry, pixel description, windows, transfer syntax and where the file is.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Collection(models.Model):
    """A named group of studies, e.g. one import or one public data set."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Study(models.Model):
    study_instance_uid = models.CharField(max_length=64, unique=True)
    collection = models.ForeignKey(Collection, null=True, blank=True, on_delete=models.SET_NULL, related_name="studies")
    patient_id = models.CharField(max_length=64, blank=True, db_index=True)
    patient_name = models.CharField(max_length=324, blank=True)
    patient_birth_date = models.CharField(max_length=8, blank=True)
    patient_sex = models.CharField(max_length=16, blank=True)
    study_date = models.CharField(max_length=8, blank=True)
    study_time = models.CharField(max_length=16, blank=True)
    study_description = models.CharField(max_length=200, blank=True)
    accession_number = models.CharField(max_length=64, blank=True)
    study_id = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return f"{self.patient_id} {self.study_description or self.study_instance_uid}"


class Series(models.Model):
    series_instance_uid = models.CharField(max_length=64, unique=True)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    modality = models.CharField(max_length=16, blank=True, db_index=True)
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=200, blank=True)
    body_part_examined = models.CharField(max_length=64, blank=True)
    frame_of_reference_uid = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return f"{self.modality} {self.series_description or self.series_instance_uid}"


class Instance(models.Model):
    """One stored SOP instance; multi-frame instances address frames 1..number_of_frames."""

    sop_instance_uid = models.CharField(max_length=64, unique=True)
    sop_class_uid = models.CharField(max_length=64)
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    instance_number = models.IntegerField(null=True, blank=True)

    rows = models.PositiveIntegerField()
    columns = models.PositiveIntegerField()
    number_of_frames = models.PositiveIntegerField(default=1)
    samples_per_pixel = models.PositiveSmallIntegerField(default=1)
    photometric_interpretation = models.CharField(max_length=32, blank=True)
    bits_allocated = models.PositiveSmallIntegerField(default=16)
    bits_stored = models.PositiveSmallIntegerField(default=16)
    high_bit = models.PositiveSmallIntegerField(default=15)
    pixel_representation = models.PositiveSmallIntegerField(default=0)
    planar_configuration = models.PositiveSmallIntegerField(null=True, blank=True)

    # Geometry: spacing is (row spacing, column spacing) in mm as DICOM orders it.
    pixel_spacing_mm = models.JSONField(null=True, blank=True)
    slice_thickness_mm = models.FloatField(null=True, blank=True)
    spacing_between_slices_mm = models.FloatField(null=True, blank=True)
    image_position_patient = models.JSONField(null=True, blank=True)
    image_orientation_patient = models.JSONField(null=True, blank=True)
    # Per-frame positions of a multi-frame instance (list of [x, y, z]), when present.
    frame_positions_patient = models.JSONField(null=True, blank=True)

    rescale_slope = models.FloatField(default=1.0)
    rescale_intercept = models.FloatField(default=0.0)
    rescale_type = models.CharField(max_length=16, blank=True)
    window_centers = models.JSONField(default=list, blank=True)
    window_widths = models.JSONField(default=list, blank=True)

    transfer_syntax_uid = models.CharField(max_length=64)
    file_path = models.CharField(max_length=500, help_text="Relative to READERBOARD_DATA_DIR.")
    file_size = models.BigIntegerField()
    # Position along the slice normal (mm), then instance number: anatomical reading order.
    sort_position_mm = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # What core.geometry needs to place a pixel in patient space: load only these for geometry work.
    GEOMETRY_FIELDS = (
        "sop_instance_uid",
        "rows",
        "columns",
        "number_of_frames",
        "pixel_spacing_mm",
        "slice_thickness_mm",
        "spacing_between_slices_mm",
        "image_position_patient",
        "image_orientation_patient",
        "frame_positions_patient",
    )

    class Meta:
        ordering = ["series_id", "sort_position_mm", "instance_number", "id"]
        indexes = [models.Index(fields=["series", "sort_position_mm", "instance_number"])]

    def __str__(self) -> str:
        return self.sop_instance_uid

    @property
    def absolute_path(self):
        return settings.DATA_DIR / self.file_path


class ImportJob(models.Model):
    """An import started from the console or the command line, with its per-file report."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    collection = models.ForeignKey(Collection, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    upload_dir = models.CharField(max_length=500, blank=True)
    # Store de-identified copies (DICOM PS3.15 basic profile) instead of the files as uploaded.
    deidentify = models.BooleanField(default=False)
    # How NIfTI volumes among the files become DICOM (viewer.nifti.importing.NiftiOptions): {"modality",
    # "patient_id", "patient_name"}; empty for the defaults (MR, each file's own name as the patient).
    nifti_options = models.JSONField(default=dict, blank=True)
    files_total = models.PositiveIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=list, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"import {self.pk} ({self.status})"
