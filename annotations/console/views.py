"""Console pages and JSON endpoints: parse the request, check the role, call one service, shape the answer."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.tokens import default_token_generator
from django.contrib.auth.views import LoginView, LogoutView
from django.db.models import Count
from django.forms import BaseFormSet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.encoding import force_str
from django.utils.http import url_has_allowed_host_and_scheme, urlsafe_base64_decode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotations.api.exports import visible_jobs
from annotations.booth import readers, sign_in_limits
from annotations.booth.roles import is_admin
from annotations.console import (
    follow_up_results,
    live,
    people,
    prediction_uploads,
    results,
    selectors,
    task_setup,
    uploads,
)
from annotations.console.forms import (
    InviteForm,
    NiftiOptionsForm,
    PredictionImportForm,
    ReferenceAnswerFormSet,
    RolesForm,
    TaskForm,
)
from annotations.console.permissions import admin_api, admin_page, staff_api, staff_page
from annotations.console.svg_plots import TimelinePoint, timeline_svg
from annotations.console.tasks import start_import, start_prediction_import
from annotations.core import model_review
from annotations.core.answers import KINDS
from annotations.exports.service import FOLLOW_UP_FORMATS
from annotations.follow_up import time_points
from annotations.instructions import preview_instructions
from annotations.models import Case, ModelPrediction, PredictionImportJob, QuestionSet, Read, ReferenceLesion, Task
from annotations.models.exports import ExportJob
from annotations.predictions import services as prediction_services
from annotations.predictions.errors import PredictionError
from annotations.predictions.selectors import model_summaries, model_vs_crowd
from annotations.questions.presets import PRESETS, preset_question
from annotations.questions.services import current_question_set
from annotations.selectors import instructions_html
from viewer.models import Collection, ImportJob, Instance, Series

# --- helpers ---------------------------------------------------------------------------


def rendered_url(instance: Instance, *, size: int = 128) -> str:
    """Return the WADO-RS rendered URL of an instance's first frame, sized for a thumbnail or slice view."""
    series = instance.series
    return (
        f"/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}/rendered?viewport={size},{size}"
    )


def series_thumbnail_url(series: Series, *, size: int = 128) -> str:
    """Return the WADO-RS series thumbnail URL (the image-delivery service picks a representative slice)."""
    return (
        f"/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/thumbnail?viewport={size},{size}"
    )


def _json_body(request: HttpRequest) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValueError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _error(message: str, status: int = 400, **extra) -> JsonResponse:
    return JsonResponse({"detail": message, **extra}, status=status)


def _context(request: HttpRequest, section: str, **extra) -> dict:
    return {"section": section, "can_edit": is_admin(request.user), **extra}


# --- sign in ---------------------------------------------------------------------------


class ConsoleLoginView(LoginView):
    """Django's login form behind the sign-in limits readers have (sign_in_limits, scope "console").

    The password is only checked (a PBKDF2 hash, half a CPU-second) once a guess is reserved: strangers
    get an exponential slow-down per username and per address, answered 429 with Retry-After, while an
    admin's browser that signed in before keeps its own counter (device cookie).
    """

    template_name = "console/login.html"
    redirect_authenticated_user = False

    def get_default_redirect_url(self):
        return reverse("console:home")

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        identity = console_identity(request.POST.get("username", ""))
        try:
            readers.check_attempt_rate(scope="console", client_key=readers.client_address(request))
            reservation = sign_in_limits.reserve_guess(
                scope=CONSOLE_SCOPE,
                identity=identity,
                policy=sign_in_limits.CONSOLE_PASSWORDS,
                client_key=readers.client_address(request),
                device_cookie=request.COOKIES.get(sign_in_limits.DEVICE_COOKIE),
            )
        except sign_in_limits.TooManyAttempts as exc:
            # An unbound form: binding it would check the password, the very work being refused.
            form = self.get_form_class()(request, initial={"username": request.POST.get("username", "")})
            refusal = f"Too many sign-in attempts. Try again in {exc.retry_after_s} s."
            response = self.render_to_response(self.get_context_data(form=form, refusal=refusal), status=429)
            response["Retry-After"] = str(exc.retry_after_s)
            return response
        form = self.get_form()
        if not form.is_valid():
            sign_in_limits.guess_failed(reservation)
            return self.form_invalid(form)
        sign_in_limits.guess_succeeded(reservation)
        response = self.form_valid(form)
        return sign_in_limits.remember_device(request, response, scope=CONSOLE_SCOPE, identity=identity)


CONSOLE_SCOPE = "console"


def console_identity(username: str) -> str:
    """Return the key a console username's attempts are counted under (case and outer space ignored)."""
    return username.strip().casefold()


class ConsoleLogoutView(LogoutView):
    next_page = "/console/login/"


@require_http_methods(["GET", "POST"])
def accept_invitation(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """Let an invited user choose a password with the one-time link."""
    User = get_user_model()
    try:
        user = User.objects.get(pk=force_str(urlsafe_base64_decode(uidb64)))
    except (User.DoesNotExist, ValueError, TypeError, OverflowError):
        user = None
    if user is None or not default_token_generator.check_token(user, token):
        return render(request, "console/invite.html", {"invalid": True}, status=400)
    form = SetPasswordForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your password is set. Sign in to continue.")
        return redirect("console:login")
    return render(request, "console/invite.html", {"form": form, "invited_user": user})


# --- home ------------------------------------------------------------------------------


@staff_page
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "console/home.html",
        _context(
            request,
            "tasks",
            tasks=selectors.task_summaries(),
            collections=selectors.collection_summaries(),
            imports=ImportJob.objects.select_related("collection").order_by("-created_at")[:5],
        ),
    )


# --- upload ----------------------------------------------------------------------------


@admin_page
@require_GET
def upload_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "console/upload.html",
        _context(
            request,
            "upload",
            collections=Collection.objects.order_by("name"),
            imports=ImportJob.objects.select_related("collection", "created_by").order_by("-created_at")[:20],
            chunk_bytes=uploads.CHUNK_BYTES,
            max_file_bytes=settings.READERBOARD["UPLOAD_MAX_BYTES"],
            nifti_form=NiftiOptionsForm(),
        ),
    )


@admin_page
@require_GET
def import_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(ImportJob.objects.select_related("collection", "created_by"), pk=job_id)
    return render(request, "console/import_detail.html", _context(request, "upload", job=job))


def import_json(job: ImportJob, *, with_report: bool = True) -> dict:
    body = {
        "id": job.pk,
        "status": job.status,
        "collection": job.collection.name if job.collection else None,
        "deidentify": job.deidentify,
        "nifti_options": job.nifti_options,
        "files_total": job.files_total,
        "files_done": job.files_done,
        "percent": round(100 * job.files_done / job.files_total) if job.files_total else 0,
        "summary": job.summary,
        "error": job.error,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "url": reverse("console:import-detail", args=[job.pk]),
    }
    if with_report:
        body["report"] = job.report
    return body


@admin_api
@require_POST
def api_import_create(request: HttpRequest) -> JsonResponse:
    try:
        body = _json_body(request)
    except ValueError as error:
        return _error(str(error))
    given = {name: body.get(name) for name in NiftiOptionsForm.base_fields}
    for name, value in given.items():
        if value is not None and not isinstance(value, str):
            return _error(f"{name} must be a string", errors={name: ["must be a string"]})
    options = NiftiOptionsForm(data={name: value or "" for name, value in given.items()})
    if not options.is_valid():
        errors = {name: [str(message) for message in messages] for name, messages in options.errors.items()}
        problems = "; ".join(f"{options.fields[name].label}: {' '.join(messages)}" for name, messages in errors.items())
        return _error(f"NIfTI options: {problems}", errors=errors)
    try:
        job = uploads.create_import_job(
            user=request.user,
            collection_name=str(body.get("collection", "")),
            deidentify=body.get("deidentify") is True,
            nifti=options.nifti_options(),
        )
    except ValueError as error:
        return _error(str(error))
    return JsonResponse(import_json(job), status=201)


@admin_api
@require_GET
def api_import_detail(request: HttpRequest, job_id: int) -> JsonResponse:
    job = get_object_or_404(ImportJob.objects.select_related("collection"), pk=job_id)
    return JsonResponse(import_json(job, with_report=job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED)))


@admin_api
@require_POST
def api_upload_register(request: HttpRequest, job_id: int) -> JsonResponse:
    job = get_object_or_404(ImportJob, pk=job_id)
    try:
        body = _json_body(request)
        size = body.get("size")
        if not isinstance(size, int) or isinstance(size, bool):
            raise ValueError("size must be an integer number of bytes")
        state = uploads.register_upload(job=job, name=str(body.get("name", "")), size=size)
    except ValueError as error:
        return _error(str(error))
    return JsonResponse(state.as_json(), status=201)


@admin_api
@require_http_methods(["GET", "PUT"])
def api_upload_chunk(request: HttpRequest, job_id: int, upload_id: str) -> JsonResponse:
    """GET: how much the server holds. PUT ?offset=N with raw bytes: append a chunk at byte N."""
    job = get_object_or_404(ImportJob, pk=job_id)
    try:
        if request.method == "GET":
            return JsonResponse(uploads.upload_state(job=job, upload_id=upload_id).as_json())
        try:
            offset = int(request.GET.get("offset", ""))
        except ValueError:
            return _error("offset must be given as ?offset=<byte>")
        state = uploads.append_chunk(job=job, upload_id=upload_id, offset=offset, chunk=request.body)
    except uploads.OffsetMismatch as error:
        return _error(str(error), status=409, offset=error.offset)
    except uploads.UploadError as error:
        status = 404 if "unknown upload id" in str(error) else 400
        return _error(str(error), status=status)
    return JsonResponse(state.as_json())


@admin_api
@require_POST
def api_import_start(request: HttpRequest, job_id: int) -> JsonResponse:
    job = get_object_or_404(ImportJob, pk=job_id)
    try:
        start_import(job=job)
    except uploads.UploadError as error:
        return _error(str(error), status=409)
    job.refresh_from_db()
    return JsonResponse(import_json(job), status=202)


# --- collections and series ------------------------------------------------------------


@staff_page
@require_GET
def collections_page(request: HttpRequest) -> HttpResponse:
    collections = selectors.collection_summaries()
    return render(request, "console/collections.html", _context(request, "collections", collections=collections))


@staff_page
@require_GET
def collection_detail(request: HttpRequest, collection_id: int) -> HttpResponse:
    if collection_id == 0:
        collection = Collection(id=0, name="Not in a collection")
    else:
        collection = get_object_or_404(Collection, pk=collection_id)
    rows = selectors.series_in_collection(collection_id)
    for row in rows:
        row["thumbnail_url"] = series_thumbnail_url(row["series"]) if row["thumbnail_instance"] else ""
    return render(
        request, "console/collection_detail.html", _context(request, "collections", collection=collection, rows=rows)
    )


@staff_page
@require_GET
def series_preview(request: HttpRequest, series_id: int) -> HttpResponse:
    series = get_object_or_404(Series.objects.select_related("study__collection"), pk=series_id)
    instances = list(series.instances.order_by("sort_position_mm", "instance_number", "id"))
    frames = [{"url": rendered_url(instance, size=512), "number": instance.instance_number} for instance in instances]
    return render(
        request,
        "console/series_preview.html",
        _context(
            request,
            "collections",
            series=series,
            first=instances[0] if instances else None,
            frames=frames,
            cases=Case.objects.filter(series=series).select_related("task"),
            references=ReferenceLesion.objects.filter(series=series),
        ),
    )


@staff_page
@require_GET
def patient_timeline(request: HttpRequest, patient_id: str) -> HttpResponse:
    timeline = time_points.patient_timeline(patient_id=patient_id)
    points = [
        TimelinePoint(follow_up_results.parse_da(entry.study.study_date), entry.study.study_description or "study",
                      f"{len(entry.series)} series")
        for entry in timeline
    ]  # fmt: skip
    return render(
        request,
        "console/patient_timeline.html",
        _context(
            request,
            "collections",
            patient_id=patient_id,
            timeline=timeline,
            timeline_svg=timeline_svg(points, title=f"Studies of patient {patient_id}") if timeline else "",
        ),
    )


# --- tasks -----------------------------------------------------------------------------


def _reference_initial(series_ids: list[int]) -> list[dict]:
    return [
        {
            "series": reference.series_id,
            "label": reference.label,
            "long_axis_mm": reference.long_axis_mm,
            "short_axis_mm": reference.short_axis_mm,
            "sop_instance_uid": reference.sop_instance_uid,
        }
        for reference in ReferenceLesion.objects.filter(
            series_id__in=series_ids, source=task_setup.ADMIN_REFERENCE_SOURCE
        ).order_by("series_id", "id")
    ]


def _task_form_page(request: HttpRequest, task: Task | None) -> HttpResponse:
    initial = _task_form_initial(task=task)
    question_set = current_question_set(task) if task else None
    initial["questions_json"] = _questions_json(question_set=question_set)
    form = TaskForm(request.POST or None, instance=task, initial=initial)
    gold_ids = [case.series_id for case in Case.objects.filter(task=task, is_gold=True)] if task else []
    references = ReferenceAnswerFormSet(request.POST or None, prefix="ref", initial=_reference_initial(gold_ids))
    if request.method == "POST" and form.is_valid() and references.is_valid():
        result = _save_submitted_task(task=task, form=form, references=references, user=request.user)
        if result is not None:
            messages.success(request, _saved_task_summary(result=result))
            live.notify_task_changed(result.task.id)
            return redirect("console:task-dashboard", task_id=result.task.id)
    return _render_task_form(request, task=task, form=form, references=references, question_set=question_set)


def _task_form_initial(*, task: Task | None) -> dict[str, Any]:
    """Return the form's starting values: sensible settings for a new task, the picked series of an existing one."""
    if task is None:
        return {
            "tools": task_setup.validate_tools(Task._meta.get_field("tools").default()),
            "reads_per_case": 3,
            "consensus_method": Task.ConsensusMethod.STAPLE,
            "is_open": True,
            "finding": "Neoplasm",
            "kind": Task.Kind.SINGLE,
            "baseline_source": Task.BaselineSource.ANSWER_KEY,
        }
    # An existing task's settings come from the instance; only the case pickers need filling.
    cases = list(Case.objects.filter(task=task))
    return {
        "series": [case.series_id for case in cases],
        "gold_series": [case.series_id for case in cases if case.is_gold],
    }


def _questions_json(*, question_set: QuestionSet | None) -> str:
    """Return the question set's lesion and case questions as the indented JSON the form's editor shows."""
    return json.dumps(
        {
            "lesion": question_set.lesion_questions if question_set else [],
            "case": question_set.case_questions if question_set else [],
        },
        indent=2,
    )


def _save_submitted_task(
    *, task: Task | None, form: TaskForm, references: BaseFormSet, user
) -> task_setup.TaskSaveResult | None:
    """Return the result of saving a valid task form, or None after putting save_task's error on the form."""
    data = form.cleaned_data
    series_ids = task_setup.selected_series_ids(
        series_ids=[series.id for series in data["series"]],
        collection_ids=[collection.id for collection in data["collections"]],
    )
    answers = [f.answer() for f in references.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
    try:
        return task_setup.save_task(
            task=task,
            settings={key: data[key] for key in task_setup.TASK_FIELDS if key in data},
            series_ids=series_ids,
            gold_series_ids=[series.id for series in data["gold_series"]],
            references=answers,
            user=user,
            questions=data["questions_json"],
        )
    except ValueError as error:
        form.add_error(None, str(error))
        return None


def _saved_task_summary(*, result: task_setup.TaskSaveResult) -> str:
    """Return the one-line message telling the admin what saving the task changed."""
    summary = f"Saved “{result.task.name}”: {result.cases_added} case(s) added, {result.cases_removed} removed"
    if result.cases_kept_with_reads:
        summary += f"; kept {len(result.cases_kept_with_reads)} case(s) that already have reads"
    # Version 1 is the first set of questions, not a change worth announcing.
    if result.new_question_version and result.question_version and result.question_version > 1:
        summary += f"; questions are now version {result.question_version} (earlier reads keep theirs)"
    return summary + "."


def _render_task_form(
    request: HttpRequest,
    *,
    task: Task | None,
    form: TaskForm,
    references: BaseFormSet,
    question_set: QuestionSet | None,
) -> HttpResponse:
    """Return the task form page: settings, series and collection pickers, gold answers and questions."""
    series_rows = (
        Series.objects.select_related("study__collection")
        .annotate(n_instances=Count("instances"))
        .order_by("study__collection__name", "study__patient_id", "series_number", "id")
    )

    def chosen(field: str) -> set[str]:
        return {str(value) for value in (form[field].value() or [])}

    return render(
        request,
        "console/task_form.html",
        _context(
            request,
            "tasks",
            form=form,
            references=references,
            task=task,
            series_rows=series_rows,
            selected_series=chosen("series"),
            selected_gold=chosen("gold_series"),
            selected_collections=chosen("collections"),
            collections=selectors.collection_summaries(),
            instructions_html=preview_instructions(form["instructions_md"].value() or ""),
            question_set=question_set,
            question_set_has_reads=bool(question_set and Read.all_objects.filter(question_set=question_set).exists()),
            question_presets={key: preset_question(key) for key in PRESETS},
            question_kinds=KINDS,
        ),
    )


@admin_page
@require_http_methods(["GET", "POST"])
def task_create(request: HttpRequest) -> HttpResponse:
    return _task_form_page(request, None)


@admin_page
@require_http_methods(["GET", "POST"])
def task_edit(request: HttpRequest, task_id: int) -> HttpResponse:
    return _task_form_page(request, get_object_or_404(Task, pk=task_id))


@admin_page
@require_POST
def task_set_open(request: HttpRequest, task_id: int) -> HttpResponse:
    task = get_object_or_404(Task, pk=task_id)
    is_open = request.POST.get("is_open") == "1"
    task_setup.set_task_open(task=task, is_open=is_open)
    live.notify_task_changed(task.id)
    messages.success(request, f"“{task.name}” is now {'open' if is_open else 'closed'} for reading.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("console:task-dashboard", args=[task.id])
    return redirect(target)


@admin_api
@require_POST
def api_markdown_preview(request: HttpRequest) -> JsonResponse:
    try:
        body = _json_body(request)
        return JsonResponse({"html": preview_instructions(str(body.get("markdown", "")))})
    except ValueError as error:
        return _error(str(error))


@staff_page
@require_GET
def task_dashboard(request: HttpRequest, task_id: int) -> HttpResponse:
    return _dashboard_page(request, get_object_or_404(Task, pk=task_id), prediction_form=PredictionImportForm())


def _dashboard_page(
    request: HttpRequest, task: Task, *, prediction_form: PredictionImportForm, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "console/dashboard.html",
        _context(
            request,
            "tasks",
            task=task,
            dashboard=selectors.task_dashboard(task=task),
            instructions_html=instructions_html(task),
            gold_cases=selectors.gold_cases_with_answer_keys(task),
            prediction_form=prediction_form,
            prediction_models=selectors.prediction_models(task=task),
            prediction_imports=task.prediction_imports.select_related("created_by")[:5],
            # A form post is one request: the body limit (BodySizeMiddleware) and Django's file count bound it.
            prediction_limits={
                "bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
                "files": settings.DATA_UPLOAD_MAX_NUMBER_FILES,
            },
        ),
        status=status,
    )


# --- model predictions -----------------------------------------------------------------


@admin_page
@require_POST
def task_predictions_import(request: HttpRequest, task_id: int) -> HttpResponse:
    """Store the uploaded prediction files and queue their import; the job's page reports each file."""
    task = get_object_or_404(Task, pk=task_id)
    form = PredictionImportForm(request.POST, request.FILES)
    if form.is_valid():
        data = form.cleaned_data
        try:
            job = prediction_uploads.create_prediction_import(
                task=task,
                user=request.user,
                model_name=data["model_name"],
                files=data["files"],
                show_to_readers=data["show_to_readers"],
            )
        except uploads.UploadError as error:
            form.add_error(None, str(error))
        else:
            start_prediction_import(job=job)
            return redirect("console:prediction-import", task_id=task.pk, prediction_import_id=job.pk)
    return _dashboard_page(request, task, prediction_form=form, status=400)


@admin_page
@require_POST
def task_predictions_shown(request: HttpRequest, task_id: int) -> HttpResponse:
    """Choose which model's predictions the task's readers start from, or none (an empty `model_name`)."""
    task = get_object_or_404(Task, pk=task_id)
    model_name = request.POST.get("model_name", "").strip()
    try:
        # Compared in Python: a hostile name (NUL, any length) never reaches the database.
        known = set(ModelPrediction.objects.filter(case__task=task).values_list("model_name", flat=True).distinct())
        if model_name and model_name not in known:
            raise PredictionError(f"this task has no predictions by a model named {model_name!r}")
        if model_name:
            prediction_services.show_to_readers(task=task, model_name=model_name)
            messages.success(request, f"Readers of “{task.name}” now start from {model_name}'s predictions.")
        else:
            prediction_services.stop_showing_to_readers(task=task)
            messages.success(request, f"Readers of “{task.name}” now start from an empty slate.")
    except PredictionError as error:
        messages.error(request, f"Not shown to readers: {error}")
    return redirect(reverse("console:task-dashboard", args=[task.id]) + "#model-predictions")


def prediction_import_json(job: PredictionImportJob) -> dict:
    return {
        "id": job.pk,
        "status": job.status,
        "model_name": job.model_name,
        "files_total": job.files_total,
        "files_done": job.files_done,
        "percent": round(100 * job.files_done / job.files_total) if job.files_total else 0,
        "error": job.error,
        "url": reverse("console:prediction-import", args=[job.task_id, job.pk]),
    }


@staff_page
@require_GET
def prediction_import_detail(request: HttpRequest, task_id: int, prediction_import_id: int) -> HttpResponse:
    job = get_object_or_404(
        PredictionImportJob.objects.select_related("task", "created_by"), pk=prediction_import_id, task_id=task_id
    )
    report = job.report
    return render(
        request,
        "console/prediction_import.html",
        _context(
            request,
            "tasks",
            task=job.task,
            job=job,
            imported=sum(1 for row in report if row["status"] == prediction_uploads.IMPORTED),
            refused=sum(1 for row in report if row["status"] == prediction_uploads.REFUSED),
            predictions=ModelPrediction.objects.filter(case__task_id=task_id, model_name=job.model_name),
        ),
    )


@staff_api
@require_GET
def api_prediction_import(request: HttpRequest, task_id: int, prediction_import_id: int) -> JsonResponse:
    job = get_object_or_404(PredictionImportJob, pk=prediction_import_id, task_id=task_id)
    return JsonResponse(prediction_import_json(job))


@staff_api
@require_GET
def api_task_dashboard(request: HttpRequest, task_id: int) -> JsonResponse:
    task = get_object_or_404(Task, pk=task_id)
    return JsonResponse(selectors.task_dashboard(task=task))


# --- results ---------------------------------------------------------------------------


@staff_page
@require_GET
def task_results(request: HttpRequest, task_id: int) -> HttpResponse:
    task = get_object_or_404(Task, pk=task_id)
    if task.is_follow_up:
        case_id = request.GET.get("case", "")
        return render(
            request,
            "console/follow_up_results.html",
            _context(
                request,
                "tasks",
                task=task,
                **follow_up_results.follow_up_results(task=task, case_id=int(case_id) if case_id.isdigit() else None),
                export_formats=[
                    (value, label) for value, label in ExportJob.Format.choices if value in FOLLOW_UP_FORMATS
                ],
                exports=visible_jobs(request.user).filter(task=task)[:10],
            ),
        )
    return render(
        request,
        "console/results.html",
        _context(
            request,
            "tasks",
            task=task,
            **results.task_results(task=task),
            answers=results.question_results(task=task),
            plots=results.PLOTS,
            export_formats=ExportJob.Format.choices,
            **_model_report(task),
            # The export API's own visibility rule, so every listed download link works for this user.
            exports=visible_jobs(request.user).filter(task=task)[:10],
        ),
    )


def _model_report(task: Task) -> dict:
    rows = model_vs_crowd(task=task)
    return {
        "model_rows": rows,
        "model_summaries": model_summaries(rows),
        "kept_dice": model_review.KEPT_DICE,
        "kept_line_px": model_review.KEPT_LINE_PX,
    }


@staff_page
@require_GET
def task_plot(request: HttpRequest, task_id: int, name: str) -> HttpResponse:
    task = get_object_or_404(Task, pk=task_id)
    try:
        svg = results.plot_svg(task=task, name=name)
    except KeyError:
        raise Http404("no such plot") from None
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Cache-Control"] = "private, max-age=30"
    return response


@staff_page
@require_GET
def case_view(request: HttpRequest, task_id: int, case_id: int) -> HttpResponse:
    case = get_object_or_404(Case.objects.select_related("task", "series__study"), pk=case_id, task_id=task_id)
    if case.task.is_follow_up:
        # A follow-up case is a patient over time: its page is the results page focused on it.
        return redirect(f"{reverse('console:task-results', args=[task_id])}?case={case.pk}#follow-up-plots")
    detail = results.case_detail(case=case)
    for slice_ in detail["slices"]:
        instance = slice_["instance"]
        slice_["url"] = rendered_url(instance, size=512)
        slice_["view_box"] = f"-0.5 -0.5 {instance.columns} {instance.rows}"
    return render(request, "console/case.html", _context(request, "tasks", task=case.task, **detail))


# --- people ----------------------------------------------------------------------------


@admin_page
@require_http_methods(["GET", "POST"])
def people_page(request: HttpRequest) -> HttpResponse:
    invite_form = InviteForm(request.POST or None if request.POST.get("action") == "invite" else None)
    invitation = None
    if request.method == "POST" and request.POST.get("action") == "invite" and invite_form.is_valid():
        data = invite_form.cleaned_data
        try:
            invitation = people.invite_user(username=data["username"], email=data["email"], role=data["role"])
        except ValueError as error:
            invite_form.add_error(None, str(error))
        else:
            invite_form = InviteForm()
    return render(
        request,
        "console/people.html",
        _context(
            request,
            "people",
            rows=people.people(),
            invite_form=invite_form,
            invitation_url=request.build_absolute_uri(invitation.set_password_path) if invitation else "",
            invited=invitation.user if invitation else None,
        ),
    )


@admin_page
@require_POST
def person_roles(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(get_user_model(), pk=user_id)
    form = RolesForm(request.POST)
    if form.is_valid():
        try:
            roles = people.set_roles(user=user, roles=set(form.cleaned_data["roles"]), acting_user=request.user)
        except ValueError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"{user.username}: {', '.join(sorted(roles)) or 'no console roles'}.")
    return redirect("console:people")
