"""Root URLs: each app mounts its own URL modules."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from readerboard.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # Django admin's own login has no attempt limits: it signs in through the console's, which has.
    path("django-admin/login/", RedirectView.as_view(url="/console/login/", query_string=True)),
    path("django-admin/", admin.site.urls),
    path("dicomweb/", include("viewer.dicomweb_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="api-docs"),
    path("api/images/", include("viewer.urls")),
    path("api/exports/", include("annotations.export_urls")),
    path("api/", include("annotations.api_urls")),
    path("", include("annotations.console.urls")),
    path("", include("annotations.urls")),
]
