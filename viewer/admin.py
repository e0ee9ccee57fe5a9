"""Django admin for the DICOM records: browse and search; files are changed only by imports."""

from __future__ import annotations

from django.contrib import admin

from viewer.models import Collection, ImportJob, Instance, Series, Study


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("patient_id", "study_description", "study_date", "collection", "study_instance_uid")
    list_filter = ("collection",)
    search_fields = ("patient_id", "study_instance_uid", "accession_number", "study_description")


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    list_display = ("series_instance_uid", "modality", "series_number", "series_description", "study")
    list_filter = ("modality",)
    search_fields = ("series_instance_uid", "series_description", "study__patient_id")
    raw_id_fields = ("study",)


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ("sop_instance_uid", "series", "instance_number", "rows", "columns", "number_of_frames")
    search_fields = ("sop_instance_uid", "series__series_instance_uid")
    raw_id_fields = ("series",)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ("id", "collection", "status", "files_done", "files_total", "created_at", "finished_at")
    list_filter = ("status",)
