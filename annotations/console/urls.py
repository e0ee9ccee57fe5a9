"""Console routes: pages under console/, JSON under api/console/ (mounted at the site root)."""

from django.urls import path

from annotations.console import views

app_name = "console"

urlpatterns = [
    path("console/", views.home, name="home"),
    path("console/login/", views.ConsoleLoginView.as_view(), name="login"),
    path("console/logout/", views.ConsoleLogoutView.as_view(), name="logout"),
    path("console/invite/<str:uidb64>/<str:token>/", views.accept_invitation, name="invite"),
    path("console/upload/", views.upload_page, name="upload"),
    path("console/imports/<int:job_id>/", views.import_detail, name="import-detail"),
    path("console/collections/", views.collections_page, name="collections"),
    path("console/collections/<int:collection_id>/", views.collection_detail, name="collection"),
    path("console/series/<int:series_id>/", views.series_preview, name="series"),
    path("console/patients/<str:patient_id>/", views.patient_timeline, name="patient-timeline"),
    path("console/tasks/new/", views.task_create, name="task-create"),
    path("console/tasks/<int:task_id>/", views.task_dashboard, name="task-dashboard"),
    path("console/tasks/<int:task_id>/edit/", views.task_edit, name="task-edit"),
    path("console/tasks/<int:task_id>/open/", views.task_set_open, name="task-open"),
    path("console/tasks/<int:task_id>/results/", views.task_results, name="task-results"),
    path("console/tasks/<int:task_id>/results/plots/<slug:name>.svg", views.task_plot, name="task-plot"),
    path("console/tasks/<int:task_id>/results/cases/<int:case_id>/", views.case_view, name="case"),
    path("console/tasks/<int:task_id>/predictions/", views.task_predictions_import, name="predictions-import"),
    path("console/tasks/<int:task_id>/predictions/shown/", views.task_predictions_shown, name="predictions-shown"),
    path(
        "console/tasks/<int:task_id>/predictions/<int:prediction_import_id>/",
        views.prediction_import_detail,
        name="prediction-import",
    ),
    path("console/people/", views.people_page, name="people"),
    path("console/people/<int:user_id>/roles/", views.person_roles, name="person-roles"),
    # JSON
    path("api/console/imports/", views.api_import_create, name="api-import-create"),
    path("api/console/imports/<int:job_id>/", views.api_import_detail, name="api-import"),
    path("api/console/imports/<int:job_id>/files/", views.api_upload_register, name="api-upload-register"),
    path("api/console/imports/<int:job_id>/files/<str:upload_id>/", views.api_upload_chunk, name="api-upload-chunk"),
    path("api/console/imports/<int:job_id>/start/", views.api_import_start, name="api-import-start"),
    path(
        "api/console/tasks/<int:task_id>/predictions/<int:prediction_import_id>/",
        views.api_prediction_import,
        name="api-prediction-import",
    ),
    path("api/console/markdown/", views.api_markdown_preview, name="api-markdown"),
    path("api/console/tasks/<int:task_id>/dashboard/", views.api_task_dashboard, name="api-task-dashboard"),
]
