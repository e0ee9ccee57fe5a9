"""Image routes for the Readerboard UI, mounted at /api/images/ (e.g. series thumbnails for the console)."""

from django.urls import path

from viewer.dicomweb import views

app_name = "images"

urlpatterns = [
    path("series/<int:series_id>/thumbnail", views.series_thumbnail_by_id, name="series-thumbnail"),
]
