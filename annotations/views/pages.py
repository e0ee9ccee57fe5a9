"""Reader pages: thin views that call services.readers / assignment / leaderboard and render templates."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from annotations.assignment import services as assignment
from annotations.booth import leaderboard, readers
from annotations.booth.roles import is_admin, is_researcher_or_admin
from annotations.console.permissions import LOGIN_URL as CONSOLE_LOGIN_URL
from annotations.models import Case, Task
from annotations.models.tasks import Tool
from annotations.selectors import instructions_html, open_tasks
from annotations.views.forms import LoginForm, SignupForm

# A device where someone once opened a page with ?booth=1 defaults every sign-in to booth mode.
BOOTH_DEVICE_COOKIE = "readerboard_booth_device"
BOOTH_DEVICE_MAX_AGE_S = 90 * 24 * 3600


def _reader(request: HttpRequest):
    return getattr(request.user, "reader", None) if request.user.is_authenticated else None


def _booth_check(request: HttpRequest) -> bool:
    """End an idle booth session; return True when it was ended just now."""
    if readers.enforce_booth_session(request):
        messages.info(request, "You were signed out after a period of inactivity. Thanks for reading!")
        return True
    return False


def _is_booth_device(request: HttpRequest) -> bool:
    return request.GET.get("booth") == "1" or request.COOKIES.get(BOOTH_DEVICE_COOKIE) == "1"


def _remember_booth_device(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if request.GET.get("booth") == "1":
        response.set_cookie(BOOTH_DEVICE_COOKIE, "1", max_age=BOOTH_DEVICE_MAX_AGE_S, samesite="Lax")
    elif request.GET.get("booth") == "0":
        response.delete_cookie(BOOTH_DEVICE_COOKIE)
    return response


def _safe_next(request: HttpRequest, default: str = "/") -> str:
    target = request.POST.get("next") or request.GET.get("next") or default
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


def home(request: HttpRequest) -> HttpResponse:
    """The reader's start page: open tasks with their progress, count and rank; or a welcome to sign up."""
    _booth_check(request)
    reader = _reader(request)
    tasks = []
    standing = None
    if reader is not None:
        standing = leaderboard.standing(reader=reader)
        open_now = list(open_tasks())
        progress_of = assignment.progress_by_task(reader=reader, tasks=open_now)
        for task in open_now:
            tasks.append(
                {
                    "task": task,
                    "progress": progress_of[task.pk],
                    "instructions_html": instructions_html(task),
                    "tool_labels": _tool_labels(task),
                }
            )
    else:
        tasks = [
            {"task": task, "progress": None, "instructions_html": "", "tool_labels": _tool_labels(task)}
            for task in open_tasks()
        ]
    context = {
        "reader": reader,
        "standing": standing,
        "tasks": tasks,
        "board": leaderboard.leaderboard(size=5),
        "is_staff_user": is_researcher_or_admin(request.user),
        "section": "home",
    }
    return _remember_booth_device(request, render(request, "annotations/home.html", context))


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Booth sign-up: a few fields and a consent line, then straight to reading."""
    next_url = _safe_next(request)
    form = SignupForm(request.POST or None, initial={"booth_mode": _is_booth_device(request)})
    if request.method == "POST":
        try:
            readers.check_attempt_rate(scope="signup", client_key=readers.client_address(request))
        except readers.TooManyAttempts as exc:
            form.add_error(None, f"Too many sign-ups from this machine. Try again in {exc.retry_after_s} s.")
            response = render(request, "annotations/signup.html", {"form": form, "next": next_url}, status=429)
            response["Retry-After"] = str(exc.retry_after_s)
            return response
        if form.is_valid():
            data = form.cleaned_data
            try:
                reader = readers.register_reader(
                    display_name=data["display_name"],
                    pin=data["pin"],
                    role=data["role"],
                    email=data["email"] or "",
                    subspecialty=data["subspecialty"] or "",
                    years_experience=data["years_experience"],
                    consented=data["consent"],
                    team=data["team"] or "",
                )
            except readers.RegistrationError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, str(exc))
            else:
                readers.sign_in(request, reader=reader, booth_mode=data["booth_mode"])
                messages.success(request, f"Welcome, {reader.display_name}! Pick a task to start reading.")
                return _after_sign_in(request, next_url, reader=reader)
    response = render(request, "annotations/signup.html", {"form": form, "next": next_url, "section": "signup"})
    return _remember_booth_device(request, response)


@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    """Sign in with display name and PIN."""
    next_url = _safe_next(request)
    form = LoginForm(request.POST or None, initial={"booth_mode": _is_booth_device(request)})
    status = 200
    retry_after_s = None
    if request.method == "POST":
        try:
            readers.check_attempt_rate(scope="login", client_key=readers.client_address(request))
            if form.is_valid():
                reader = readers.authenticate_reader(
                    display_name=form.cleaned_data["display_name"], pin=form.cleaned_data["pin"], request=request
                )
                readers.sign_in(request, reader=reader, booth_mode=form.cleaned_data["booth_mode"])
                return _after_sign_in(request, next_url, reader=reader)
        except readers.TooManyAttempts as exc:
            form.add_error(None, f"Too many attempts. Try again in {exc.retry_after_s} s.")
            status = 429
            retry_after_s = exc.retry_after_s
        except readers.InvalidCredentials:
            form.add_error(None, "That name and PIN do not match. Check both and try again.")
            status = 400
    context = {"form": form, "next": next_url, "section": "login"}
    response = render(request, "annotations/login.html", context, status=status)
    if retry_after_s is not None:
        response["Retry-After"] = str(retry_after_s)
    return _remember_booth_device(request, response)


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    """Sign out (the booth's "I'm done" button) and return to the start page."""
    was_reader = _reader(request) is not None
    readers.sign_out(request)
    if was_reader:
        messages.success(request, "Signed out. Thanks for reading!")
    return redirect("annotations:home")


def leaderboard_page(request: HttpRequest) -> HttpResponse:
    """Top readers, live over /ws/leaderboard/; ?display=booth is the full-screen big-screen mode."""
    booth_display = request.GET.get("display") == "booth"
    if not booth_display:
        _booth_check(request)
    reader = _reader(request)
    context = {
        "board": leaderboard.leaderboard(size=50 if not booth_display else 12),
        "standing": leaderboard.standing(reader=reader) if reader else None,
        "reader": reader,
        "booth_display": booth_display,
        "initial_message": leaderboard.leaderboard_message(size=50 if not booth_display else 12),
        "section": "leaderboard",
    }
    return render(request, "annotations/leaderboard.html", context)


def read(request: HttpRequest, task_id: int) -> HttpResponse:
    """The reading page of a task (template viewer/read.html, the Cornerstone3D viewer)."""
    signed_out = _booth_check(request)
    login_url = f"{reverse('annotations:login')}?next={request.path}"
    if signed_out or not request.user.is_authenticated:
        return HttpResponseRedirect(login_url)
    reader = _reader(request)
    if reader is None:
        messages.warning(request, "Reading needs a reader profile: sign up as a reader (this account has none).")
        return redirect("annotations:home")
    task = get_object_or_404(Task, pk=task_id, is_open=True)
    booth = readers.booth_status(request)
    standing = leaderboard.standing(reader=reader)
    api_urls = {
        "me": reverse("api:me"),
        "tasks": reverse("api:tasks"),
        "next_case": reverse("api:next-case", args=[task.pk]),
        "lease": reverse("api:lease", args=[0]).replace("/0/", "/{case_id}/"),
        "reads": reverse("api:reads"),
        "leaderboard": reverse("api:leaderboard"),
        "logout": reverse("api:logout"),
        "leaderboard_ws": "/ws/leaderboard/",
        "wadors_root": "/dicomweb",
        "home": reverse("annotations:home"),
        "leaderboard_page": reverse("annotations:leaderboard"),
        "login": login_url,
    }
    context = {
        "task": task,
        "instructions_html": instructions_html(task),
        "reader": reader,
        "standing": standing,
        "booth_mode": booth.booth_mode,
        "api_urls": api_urls,
        "reading_config": {
            "task_id": task.pk,
            "task_name": task.name,
            "tools": list(task.tools or []),
            "booth_mode": booth.booth_mode,
            "booth_idle_seconds": booth.idle_seconds,
            "lease_seconds": assignment.lease_seconds(),
            "reader": {
                "display_name": reader.display_name,
                "reads_count": standing.reads_count,
                "rank": standing.rank,
            },
            "urls": api_urls,
        },
    }
    return render(request, "viewer/read.html", context)


def read_answer_key(request: HttpRequest, case_id: int) -> HttpResponse:
    """The reading page in answer-key mode: an admin draws and answers a gold case's reference read.

    Everything is loaded from and saved to /api/cases/<id>/answer-key/; no lease, no next case.
    Admins only, like every other change to a task (researchers look, never change).
    """
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), CONSOLE_LOGIN_URL)
    if not is_admin(request.user):
        raise PermissionDenied("Only admins may draw answer keys.")
    case = get_object_or_404(Case.objects.select_related("task"), pk=case_id, is_gold=True)
    context = {
        "task": case.task,
        "answer_key_case": case,
        "return_url": reverse("console:task-dashboard", args=[case.task_id]),
    }
    return render(request, "viewer/read.html", context)


def _tool_labels(task: Task) -> list[str]:
    labels = dict(Tool.choices)
    return [labels.get(tool, tool) for tool in task.tools or []]


def _after_sign_in(request: HttpRequest, next_url: str, *, reader) -> HttpResponse:
    # The device cookie: this browser's later sign-ins under this name are not slowed by strangers' guesses.
    return readers.remember_device(request, HttpResponseRedirect(next_url or "/"), reader=reader)
