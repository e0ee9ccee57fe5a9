"""DICOMweb routes (PS3.18), mounted at /dicomweb/: QIDO-RS and WADO-RS with rendered and thumbnail resources."""

from django.urls import path, register_converter

from viewer.dicomweb import views


class UIDConverter:
    """A DICOM UID: dot-separated digit groups, at most 64 characters."""

    regex = r"[0-9]+(?:\.[0-9]+)*"

    def to_python(self, value: str) -> str:
        if len(value) > 64:
            raise ValueError("UID longer than 64 characters")
        return value

    def to_url(self, value: str) -> str:
        return value


class FrameListConverter:
    """One or more 1-based frame numbers separated by commas (validated in the view, to answer 400)."""

    regex = r"[^/]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class TagConverter:
    regex = r"[0-9A-Fa-f]{8}"

    def to_python(self, value: str) -> str:
        return value.upper()

    def to_url(self, value: str) -> str:
        return value


register_converter(UIDConverter, "uid")
register_converter(FrameListConverter, "frames")
register_converter(TagConverter, "tag")

app_name = "dicomweb"

STUDY = "studies/<uid:study_uid>"
SERIES = STUDY + "/series/<uid:series_uid>"
INSTANCE = SERIES + "/instances/<uid:sop_uid>"
FRAMES = INSTANCE + "/frames/<frames:frame_list>"

urlpatterns = [
    # QIDO-RS
    path("studies", views.search_studies, name="studies"),
    path("series", views.search_series, name="all-series"),
    path("instances", views.search_instances, name="all-instances"),
    path(STUDY + "/series", views.search_series, name="study-series"),
    path(STUDY + "/instances", views.search_instances, name="study-instances"),
    path(SERIES + "/instances", views.search_instances, name="series-instances"),
    # WADO-RS
    path(STUDY, views.retrieve_study, name="study"),
    path(STUDY + "/metadata", views.study_metadata, name="study-metadata"),
    path(SERIES, views.retrieve_series, name="series"),
    path(SERIES + "/metadata", views.series_metadata, name="series-metadata"),
    path(SERIES + "/thumbnail", views.series_thumbnail, name="series-thumbnail"),
    path(INSTANCE, views.retrieve_instance, name="instance"),
    path(INSTANCE + "/metadata", views.instance_metadata, name="instance-metadata"),
    path(INSTANCE + "/rendered", views.rendered_instance, name="instance-rendered"),
    path(INSTANCE + "/thumbnail", views.instance_thumbnail, name="instance-thumbnail"),
    path(INSTANCE + "/bulkdata/<tag:tag>", views.bulkdata, name="bulkdata"),
    path(FRAMES, views.frames, name="frames"),
    path(FRAMES + "/rendered", views.rendered_frame, name="frames-rendered"),
    path(FRAMES + "/thumbnail", views.frame_thumbnail, name="frames-thumbnail"),
]
