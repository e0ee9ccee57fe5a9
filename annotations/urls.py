"""Reader pages, mounted at the site root."""

from django.urls import path

from annotations.views import pages

app_name = "annotations"

urlpatterns = [
    path("", pages.home, name="home"),
    path("signup/", pages.signup, name="signup"),
    path("login/", pages.login, name="login"),
    path("logout/", pages.logout, name="logout"),
    path("leaderboard/", pages.leaderboard_page, name="leaderboard"),
    path("read/<int:task_id>/", pages.read, name="read"),
    path("read/answer-key/<int:case_id>/", pages.read_answer_key, name="read-answer-key"),
]
