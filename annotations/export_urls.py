"""Export API routes, mounted at /api/exports/ (annotations/api/exports.py)."""

from django.urls import path

from annotations.api import exports

app_name = "exports"

urlpatterns = [
    path("", exports.ExportJobListView.as_view(), name="jobs"),
    path("<int:job_id>/", exports.ExportJobDetailView.as_view(), name="job"),
    path("<int:job_id>/download/", exports.ExportJobDownloadView.as_view(), name="download"),
]
