"""Reading API routes, mounted at /api/ (docs/api-reading.md)."""

from django.urls import path

from annotations.api import views

app_name = "api"

urlpatterns = [
    path("signup/", views.SignupView.as_view(), name="signup"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("me/", views.MeView.as_view(), name="me"),
    path("tasks/", views.TaskListView.as_view(), name="tasks"),
    path("tasks/<int:task_id>/next-case/", views.NextCaseView.as_view(), name="next-case"),
    path("tasks/<int:task_id>/upcoming-case/", views.UpcomingCaseView.as_view(), name="upcoming-case"),
    path("cases/<int:case_id>/lease/", views.LeaseView.as_view(), name="lease"),
    path("cases/<int:case_id>/mask-proposals/", views.MaskProposalView.as_view(), name="mask-proposals"),
    path("reads/", views.ReadSubmitView.as_view(), name="reads"),
    path("cases/<int:case_id>/answer-key/", views.AnswerKeyView.as_view(), name="answer-key"),
    path("leaderboard/", views.LeaderboardView.as_view(), name="leaderboard"),
    path("teams/", views.TeamSuggestionsView.as_view(), name="teams"),
]
