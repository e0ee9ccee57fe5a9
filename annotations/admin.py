"""Django admin for tasks, cases, readers and reads: a back-office view; reads are shown read-only."""

from __future__ import annotations

from django.contrib import admin

from annotations.booth import names, teams
from annotations.models import (
    Case,
    CaseConsensus,
    ConsensusLesion,
    ExportJob,
    Lease,
    Mark,
    MaskSlice,
    QuestionSet,
    Read,
    Reader,
    ReaderQuality,
    ReferenceLesion,
    Task,
    Team,
)


@admin.register(Reader)
class ReaderAdmin(admin.ModelAdmin):
    list_display = ("display_name", "pseudonym", "role", "team", "subspecialty", "years_experience", "created_at")
    list_filter = ("role",)
    search_fields = ("display_name", "pseudonym", "email")
    readonly_fields = ("pseudonym", "name_skeleton", "consented_at", "created_at")
    raw_id_fields = ("user", "team")

    def save_model(self, request, obj: Reader, form, change) -> None:
        # An admin's rename keeps the stored form and the look-alike key in step (no look-alike check:
        # an admin may knowingly keep two similar names apart).
        obj.display_name = names.normalise_name(obj.display_name)
        obj.name_skeleton = names.name_skeleton(obj.display_name)
        super().save_model(request, obj, form, change)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "pseudonym", "created_at")
    search_fields = ("name", "pseudonym")
    readonly_fields = ("name_key", "name_skeleton", "pseudonym", "created_at")

    def save_model(self, request, obj: Team, form, change) -> None:
        # A renamed team is matched by its new name at sign-up.
        obj.name = teams.normalise_team_name(obj.name)
        obj.name_key = teams.team_key(obj.name)
        obj.name_skeleton = names.name_skeleton(obj.name)
        super().save_model(request, obj, form, change)


class CaseInline(admin.TabularInline):
    model = Case
    fields = ("label", "series", "is_gold", "reads_done")
    readonly_fields = ("reads_done",)
    raw_id_fields = ("series",)
    extra = 0
    show_change_link = True


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("name", "is_open", "reads_per_case", "max_lesions_per_case", "consensus_method", "created_at")
    list_filter = ("is_open", "consensus_method")
    search_fields = ("name",)
    inlines = [CaseInline]


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("__str__", "task", "series", "is_gold", "reads_done")
    list_filter = ("task", "is_gold")
    search_fields = ("label", "series__series_instance_uid")
    raw_id_fields = ("series",)
    readonly_fields = ("reads_done",)


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ("case", "reader", "expires_at", "created_at")
    raw_id_fields = ("case", "reader")


class MarkInline(admin.TabularInline):
    model = Mark
    extra = 0
    can_delete = False
    readonly_fields = (
        "lesion_index", "kind", "instance", "frame", "start_col", "start_row", "end_col", "end_row", "length_mm",
    )  # fmt: skip

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(QuestionSet)
class QuestionSetAdmin(admin.ModelAdmin):
    """Question versions are edited in the console's task builder, which makes new versions as reads need."""

    list_display = ("id", "task", "version", "created_by", "created_at")
    list_filter = ("task",)

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Read)
class ReadAdmin(admin.ModelAdmin):
    """Reads are immutable records: the admin shows them and never edits them."""

    list_display = (
        "id",
        "case",
        "reader",
        "version",
        "is_answer_key",
        "no_lesion",
        "skip",
        "quality_problem",
        "submitted_at",
    )
    list_filter = ("is_answer_key", "skip", "no_lesion", "quality_problem", "case__task")
    search_fields = ("client_uuid", "reader__display_name")
    inlines = [MarkInline]

    def get_queryset(self, request):
        # Raw records include answer keys, which the default manager leaves out.
        return Read.all_objects.select_related("case", "reader")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(MaskSlice)
class MaskSliceAdmin(admin.ModelAdmin):
    list_display = ("read", "lesion_index", "instance", "frame", "pixel_count")
    exclude = ("counts",)
    raw_id_fields = ("read", "instance")

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ReferenceLesion)
class ReferenceLesionAdmin(admin.ModelAdmin):
    list_display = ("series", "label", "source", "long_axis_mm", "short_axis_mm")
    raw_id_fields = ("series",)


@admin.register(CaseConsensus)
class CaseConsensusAdmin(admin.ModelAdmin):
    list_display = ("case", "algorithm_version", "n_reads", "low_agreement", "is_current", "computed_at")
    list_filter = ("is_current", "low_agreement")
    raw_id_fields = ("case",)


@admin.register(ConsensusLesion)
class ConsensusLesionAdmin(admin.ModelAdmin):
    list_display = ("consensus", "lesion_index", "support", "accepted", "long_axis_median_mm")
    raw_id_fields = ("consensus",)


@admin.register(ReaderQuality)
class ReaderQualityAdmin(admin.ModelAdmin):
    list_display = ("task", "reader", "n_reads", "weight", "sensitivity", "specificity", "computed_at")
    raw_id_fields = ("reader",)


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ("task", "format", "status", "progress_done", "progress_total", "created_at", "finished_at")
    list_filter = ("format", "status")
