"""Export API (/api/exports/): request an export job, poll it, download its file, list jobs.

Only admins and researchers may export; only admins may turn pseudonymisation off or ask for team names.
Researchers see and download their own jobs only, so an admin's identified export
never reaches them. Token authentication works for scripts
(`Authorization: Token <key>`). Views parse input, call the export service (through
the Celery task) and shape output.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import FileSystemStorage, storages
from django.db import transaction
from django.http import FileResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations.api.authentication import ReaderSessionAuthentication
from annotations.booth.roles import is_admin, is_researcher_or_admin
from annotations.exports import check_exportable
from annotations.models import ExportJob, Task

logger = logging.getLogger(__name__)


class IsResearcherOrAdmin(BasePermission):
    message = "Only admins and researchers may export."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and is_researcher_or_admin(request.user))


class ExportJobSerializer(serializers.ModelSerializer):
    task_name = serializers.CharField(source="task.name", read_only=True)
    progress_fraction = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()
    file_name = serializers.SerializerMethodField()
    file_size = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "task",
            "task_name",
            "format",
            "pseudonymise",
            "identify_teams",
            "raw_cells",
            "status",
            "progress_done",
            "progress_total",
            "progress_fraction",
            "error",
            "warnings",
            "created_at",
            "finished_at",
            "download_url",
            "file_name",
            "file_size",
        ]
        read_only_fields = fields

    warnings = serializers.DictField(
        child=serializers.IntegerField(),
        read_only=True,
        help_text=(
            "What the export changed or left out to fit its format, by kind (e.g. formula_cells_neutralised, "
            "unencodable_text_replaced, dicom_documents_skipped); empty when nothing was. See docs/exports.md."
        ),
    )

    def get_progress_fraction(self, job: ExportJob) -> float:
        if job.status == ExportJob.Status.DONE:
            return 1.0
        return job.progress_done / job.progress_total if job.progress_total else 0.0

    def get_download_url(self, job: ExportJob) -> str | None:
        if job.status != ExportJob.Status.DONE:
            return None
        request = self.context.get("request")
        path = f"/api/exports/{job.pk}/download/"
        return request.build_absolute_uri(path) if request else path

    def get_file_name(self, job: ExportJob) -> str | None:
        return Path(job.file_path).name if job.file_path else None

    def get_file_size(self, job: ExportJob) -> int | None:
        name = _job_file(job)
        return storages["exports"].size(name) if name else None


class ExportJobCreateSerializer(serializers.Serializer):
    task = serializers.PrimaryKeyRelatedField(queryset=Task.objects.all())
    format = serializers.ChoiceField(choices=ExportJob.Format.choices)
    pseudonymise = serializers.BooleanField(default=True, help_text="Only admins may set this to false.")
    identify_teams = serializers.BooleanField(
        default=False,
        help_text="Team names instead of team pseudonyms in the reads CSV (readers stay pseudonymised). Admins only.",
    )
    raw_cells = serializers.BooleanField(
        default=False,
        help_text="CSV cells exactly as stored: cells starting with =, +, -, @ are not neutralised with a leading "
        "quote (docs/exports.md, CSV injection).",
    )


def _job_file(job: ExportJob) -> str | None:
    """The name of a job's finished file in the exports store, if it is there and inside the store."""
    if job.status != ExportJob.Status.DONE or not job.file_path:
        return None
    if Path(job.file_path).is_absolute() or ".." in Path(job.file_path).parts:
        return None
    try:
        return job.file_path if storages["exports"].exists(job.file_path) else None
    except SuspiciousFileOperation:
        return None


def visible_jobs(user):
    """The jobs a user may see: all for admins, their own for researchers."""
    jobs = ExportJob.objects.select_related("task").order_by("-created_at", "-id")
    return jobs if is_admin(user) else jobs.filter(requested_by=user)


def _queue(job: ExportJob) -> None:
    from annotations.exports.tasks import run_export_job

    try:
        run_export_job.delay(job.pk)
    except Exception as error:
        # The export itself raising in eager mode is already recorded on the job; a broker error is not.
        job.refresh_from_db()
        if job.status in (ExportJob.Status.PENDING, ExportJob.Status.RUNNING):
            job.status, job.error = ExportJob.Status.FAILED, f"could not queue the export: {error}"
            job.save(update_fields=["status", "error"])
        logger.warning("export job %s did not run: %s", job.pk, error)


class ExportAPIView(APIView):
    # The reading API's session class: 401 (not 403) without a session, one cookie scheme in the schema.
    authentication_classes = [ReaderSessionAuthentication, TokenAuthentication]
    permission_classes = [IsResearcherOrAdmin]


class ExportJobListView(ExportAPIView):
    @extend_schema(
        summary="List export jobs",
        parameters=[OpenApiParameter("task", OpenApiTypes.INT, description="only this task's jobs")],
        responses={200: ExportJobSerializer(many=True), 403: OpenApiResponse(description="not an admin/researcher")},
    )
    def get(self, request: Request) -> Response:
        jobs = visible_jobs(request.user)
        task = request.query_params.get("task")
        if task:
            if not task.isdigit():
                return Response({"task": ["must be a task id"]}, status=status.HTTP_400_BAD_REQUEST)
            jobs = jobs.filter(task_id=int(task))
        return Response(ExportJobSerializer(jobs[:200], many=True, context={"request": request}).data)

    @extend_schema(
        summary="Start an export job",
        description=(
            "Queues an export of a task in one format (csv, consensus_csv, sr, seg, bundle, or the training "
            "datasets nnunet, monai, deeplesion). Poll the job, or follow it on the WebSocket "
            "/ws/console/exports/<id>/, until status is done, then download it. A training dataset of a task "
            "without masks (nnunet, monai) or without consensus lines (deeplesion) is refused with 400."
        ),
        request=ExportJobCreateSerializer,
        responses={
            202: ExportJobSerializer,
            400: OpenApiResponse(description="invalid task or format, or a training dataset of an empty task"),
            403: OpenApiResponse(description="not an admin/researcher, or a researcher asking for reader identities"),
        },
    )
    def post(self, request: Request) -> Response:
        payload = ExportJobCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        if not payload.validated_data["pseudonymise"] and not is_admin(request.user):
            raise PermissionDenied("Only admins may export reader identities (pseudonymise=false).")
        if payload.validated_data["identify_teams"] and not is_admin(request.user):
            raise PermissionDenied("Only admins may export team names (identify_teams=true).")
        try:
            check_exportable(task=payload.validated_data["task"], fmt=payload.validated_data["format"])
        except ValueError as error:
            return Response({"format": [str(error)]}, status=status.HTTP_400_BAD_REQUEST)
        job = ExportJob.objects.create(
            task=payload.validated_data["task"],
            format=payload.validated_data["format"],
            pseudonymise=payload.validated_data["pseudonymise"],
            identify_teams=payload.validated_data["identify_teams"],
            raw_cells=payload.validated_data["raw_cells"],
            requested_by=request.user,
        )
        transaction.on_commit(lambda: _queue(job))
        return Response(ExportJobSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


class ExportJobDetailView(ExportAPIView):
    @extend_schema(
        summary="An export job's status and progress",
        responses={
            200: ExportJobSerializer,
            403: OpenApiResponse(description="not an admin/researcher"),
            404: OpenApiResponse(description="no such job visible to you"),
        },
    )
    def get(self, request: Request, job_id: int) -> Response:
        job = get_object_or_404(visible_jobs(request.user), pk=job_id)
        return Response(ExportJobSerializer(job, context={"request": request}).data)


class ExportJobDownloadView(ExportAPIView):
    @extend_schema(
        summary="Download a finished export",
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="the CSV or zip file"),
            302: OpenApiResponse(description="object storage: redirect to a short-lived signed URL of the file"),
            403: OpenApiResponse(description="not an admin/researcher"),
            404: OpenApiResponse(description="no such job visible to you"),
            409: OpenApiResponse(description="the job has not finished (or failed)"),
        },
    )
    def get(self, request: Request, job_id: int):
        job = get_object_or_404(visible_jobs(request.user), pk=job_id)
        name = _job_file(job)
        if name is None:
            detail = "the export has not finished" if job.status != ExportJob.Status.DONE else "the file is gone"
            return Response({"detail": detail, "status": job.status}, status=status.HTTP_409_CONFLICT)
        filename = Path(name).name
        content_type = "text/csv" if filename.endswith(".csv") else "application/zip"
        store = storages["exports"]
        if not isinstance(store, FileSystemStorage):
            # Object storage: the client fetches the bytes straight from the bucket through a
            # short-lived signed URL, so a large archive never ties up a web process.
            parameters = {
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
                "ResponseContentType": content_type,
            }
            return HttpResponseRedirect(store.url(name, parameters=parameters))
        return FileResponse(store.open(name, "rb"), as_attachment=True, filename=filename, content_type=content_type)
