"""Root URLs: each app mounts its own URL modules."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from readerboard.health import healthz


def admin_login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponseRedirect:
    """Send Django admin's sign-in to the console's, which has attempt limits (Django's own has none)."""
    query = request.META.get("QUERY_STRING", "")
    return HttpResponseRedirect("/console/login/" + (f"?{query}" if query else ""))


admin.site.login = admin_login

urlpatterns = [
    path("healthz", healthz, name="healthz"),
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
