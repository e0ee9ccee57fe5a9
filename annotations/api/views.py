"""Reading API views (docs/api-reading.md): parse the request, call one service, shape the answer."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from annotations.api import serializers as s
from annotations.api.authentication import IsReader, ReaderSessionAuthentication
from annotations.assignment import services as assignment
from annotations.booth import leaderboard, readers, teams
from annotations.booth.roles import is_admin, user_roles
from annotations.core.field_checks import safe_text
from annotations.follow_up import time_points
from annotations.models import Case, Lease, Reader, Task
from annotations.models.tasks import ReaderRole
from annotations.predictions.suggestions import suggestion_document
from annotations.questions.services import task_questions_payload
from annotations.reading import answer_keys, submission
from annotations.reading.documents import ReadValidationError
from annotations.reading.kinds import NotGoldCase, ReadConflict, TooManyVersions
from annotations.segmentation import services as segmentation
from annotations.selectors import case_instance_summaries, instructions_html, open_tasks, window_presets

WADORS_ROOT = "/dicomweb"


class ReadingAPIView(APIView):
    """Base of the reading API: 401 without a session, booth sessions end after inactivity."""

    authentication_classes = [ReaderSessionAuthentication, TokenAuthentication]
    permission_classes = [IsReader]
    # A request a person made (not a timer) keeps a booth session alive.
    counts_as_activity = True

    def initial(self, request: Request, *args, **kwargs) -> None:
        readers.enforce_booth_session(request._request, activity=self.is_activity(request))
        super().initial(request, *args, **kwargs)

    def is_activity(self, request: Request) -> bool:
        return self.counts_as_activity

    @property
    def reader(self) -> Reader:
        return self.request.user.reader


def me_payload(request, reader: Reader) -> dict:
    """Return the Me object of docs/api-reading.md."""
    standing = leaderboard.standing(reader=reader)
    booth = readers.booth_status(request._request if hasattr(request, "_request") else request)
    return {
        "display_name": reader.display_name,
        "pseudonym": reader.pseudonym,
        "role": reader.role,
        "role_label": ReaderRole(reader.role).label if reader.role in ReaderRole.values else reader.role,
        "roles": sorted(user_roles(reader.user)),
        "reads_count": standing.reads_count,
        "rank": standing.rank,
        "booth_mode": booth.booth_mode,
        "booth_idle_seconds": booth.idle_seconds,
        "team": reader.team.name if reader.team_id else "",
    }


def _errors(errors: dict) -> Response:
    return Response({"errors": _sendable(errors)}, status=status.HTTP_400_BAD_REQUEST)


def _sendable(value):
    """The errors with any quoted input made encodable (DRF quotes a refused choice, which may hold a surrogate)."""
    if isinstance(value, dict):
        return {safe_text(str(key)): _sendable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_sendable(item) for item in value]
    return safe_text(str(value))


def _too_many(exc: readers.TooManyAttempts) -> Response:
    return Response(
        {"detail": f"Too many attempts. Try again in {exc.retry_after_s} s."},
        status=status.HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": str(exc.retry_after_s)},
    )


def _enforce_csrf(request: Request) -> None:
    # Sign-up and sign-in run without a session, where DRF skips CSRF; check it anyway so
    # another site cannot sign a booth browser into an account of its choosing.
    SessionAuthentication().enforce_csrf(request)


def _sign_in_answer(
    request: Request,
    *,
    scope: str,
    serializer_class: type[Serializer],
    sign_in_as: Callable[[dict, HttpRequest], Reader],
    created: bool = False,
) -> Response:
    """Sign-up and sign-in alike: CSRF, the per-address rate, the body, one service, errors shaped once.

    `sign_in_as(validated_data, http_request)` returns the reader or raises RegistrationError,
    InvalidCredentials or TooManyAttempts; the session starts and the browser gets a device cookie.
    """
    _enforce_csrf(request)
    http_request = request._request
    try:
        readers.check_attempt_rate(scope=scope, client_key=readers.client_address(http_request))
        serializer = serializer_class(data=request.data)
        if not serializer.is_valid():
            return _errors(serializer.errors)
        data = serializer.validated_data
        reader = sign_in_as(data, http_request)
    except readers.TooManyAttempts as exc:
        return _too_many(exc)
    except readers.RegistrationError as exc:
        return _errors({exc.field: [str(exc)]})
    except readers.InvalidCredentials:
        return _errors({"non_field_errors": ["That name and PIN do not match. Check both and try again."]})
    readers.sign_in(http_request, reader=reader, booth_mode=data["booth_mode"])
    answer = Response(
        {"reader": me_payload(request, reader)}, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
    )
    return readers.remember_device(http_request, answer, reader=reader)


class SignupView(ReadingAPIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        request=s.SignupSerializer,
        responses={
            201: s.ReaderEnvelopeSerializer,
            400: s.ErrorsSerializer,
            403: s.DetailSerializer,  # CSRF check failed
            429: s.DetailSerializer,
        },
        auth=[],
        summary="Sign up as a reader and start a session",
    )
    def post(self, request: Request) -> Response:
        def register(data: dict, http_request: HttpRequest) -> Reader:
            return readers.register_reader(
                display_name=data["display_name"],
                pin=data["pin"],
                role=data["role"],
                email=data["email"],
                subspecialty=data["subspecialty"],
                years_experience=data["years_experience"],
                consented=data["consent"],
                team=data["team"],
            )

        return _sign_in_answer(
            request, scope="signup", serializer_class=s.SignupSerializer, sign_in_as=register, created=True
        )


class LoginView(ReadingAPIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        request=s.LoginSerializer,
        responses={
            200: s.ReaderEnvelopeSerializer,
            400: s.ErrorsSerializer,
            403: s.DetailSerializer,  # CSRF check failed
            429: s.DetailSerializer,
        },
        auth=[],
        summary="Sign in with display name and PIN",
    )
    def post(self, request: Request) -> Response:
        def authenticate(data: dict, http_request: HttpRequest) -> Reader:
            return readers.authenticate_reader(display_name=data["display_name"], pin=data["pin"], request=http_request)

        return _sign_in_answer(request, scope="login", serializer_class=s.LoginSerializer, sign_in_as=authenticate)


class LogoutView(ReadingAPIView):
    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={204: None}, summary="End the session")
    def post(self, request: Request) -> Response:
        readers.sign_out(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(ReadingAPIView):
    @extend_schema(responses={200: s.MeSerializer, 401: s.DetailSerializer}, summary="The signed-in reader")
    def get(self, request: Request) -> Response:
        return Response(me_payload(request, self.reader))


class TaskListView(ReadingAPIView):
    @extend_schema(responses={200: s.TaskForReaderSerializer(many=True)}, summary="Open tasks with my progress")
    def get(self, request: Request) -> Response:
        answer = []
        tasks = list(open_tasks())
        progress_of = assignment.progress_by_task(reader=self.reader, tasks=tasks)
        for task in tasks:
            progress = progress_of[task.pk]
            answer.append(
                {
                    "id": task.pk,
                    "name": task.name,
                    "instructions_html": instructions_html(task),
                    "tools": list(task.tools or []),
                    "reads_per_case": task.reads_per_case,
                    "adaptive_reads": task.adaptive_reads,
                    "min_reads": min(task.min_reads, task.reads_per_case),
                    "max_lesions_per_case": task.max_lesions_per_case,
                    "my_reads": progress.my_reads,
                    "cases_remaining_for_me": progress.cases_remaining_for_me,
                }
            )
        return Response(answer)


class NextCaseView(ReadingAPIView):
    @extend_schema(
        request=s.NextCaseRequestSerializer,
        responses={
            200: s.CaseForReadingSerializer,
            204: OpenApiResponse(description="Nothing left for this reader in the task"),
            400: s.ErrorsSerializer,
            404: s.DetailSerializer,
        },
        summary="Lease the next case to read",
    )
    def post(self, request: Request, task_id: int) -> Response:
        task = get_object_or_404(Task, pk=task_id, is_open=True)
        body = s.NextCaseRequestSerializer(data=request.data if isinstance(request.data, dict) else {})
        if not body.is_valid():
            return _errors(body.errors)
        lease = assignment.take_next_case(
            reader=self.reader, task=task, preferred_case_id=body.validated_data.get("prefer_case")
        )
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(case_for_reading(case=lease.case, lease=lease))


class UpcomingCaseView(ReadingAPIView):
    # Asked for by the page on its own once the open case is cached, not by the reader.
    counts_as_activity = False

    @extend_schema(
        responses={
            200: s.UpcomingCaseSerializer,
            204: OpenApiResponse(description="Nothing else left for this reader in the task"),
            404: s.DetailSerializer,
        },
        summary="The case likely to come next, to fetch its first slices early (no lease)",
    )
    def get(self, request: Request, task_id: int) -> Response:
        task = get_object_or_404(Task, pk=task_id, is_open=True)
        case = assignment.upcoming_case(reader=self.reader, task=task)
        if case is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response({"id": case.pk, **case_images(case)})


class LeaseView(ReadingAPIView):
    def is_activity(self, request: Request) -> bool:
        # Renewals come from a timer; only those that say the reader touched the page keep a booth alive.
        if request.method == "DELETE":
            return True
        return bool(isinstance(request.data, dict) and request.data.get("active") is True)

    @extend_schema(
        request=s.LeaseRenewSerializer,
        responses={200: s.LeaseSerializer, 404: s.DetailSerializer, 409: s.DetailSerializer},
        summary="Renew my lease on a case",
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = get_object_or_404(Case, pk=case_id)
        try:
            lease = assignment.renew_lease(reader=self.reader, case=case)
        except assignment.LeaseLost as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response({"lease_expires_at": lease.expires_at})

    @extend_schema(request=None, responses={204: None, 404: s.DetailSerializer}, summary="Give a case back unread")
    def delete(self, request: Request, case_id: int) -> Response:
        case = get_object_or_404(Case, pk=case_id)
        assignment.release_lease(reader=self.reader, case=case)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReadSubmitView(ReadingAPIView):
    @extend_schema(
        request=s.ReadDocumentSerializer,
        responses={
            201: s.ReadSavedSerializer,
            200: s.ReadSavedSerializer,
            400: s.ErrorsSerializer,
            409: s.DetailSerializer,
            413: s.DetailSerializer,
            429: s.DetailSerializer,
        },
        summary="Save a read (idempotent by client_uuid)",
    )
    def post(self, request: Request) -> Response:
        try:
            with transaction.atomic():
                result = submission.submit_read(reader=self.reader, document=request.data)
        except ReadValidationError as exc:
            return _errors(exc.errors)
        except ReadConflict as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except TooManyVersions as exc:
            return Response(
                {"detail": str(exc)},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(exc.retry_after_s)},
            )
        read = result.read
        answer = {
            "read": {"id": read.pk, "version": read.version, "case": read.case_id},
            "me": me_payload(request, self.reader),
            **result.summary,
        }
        return Response(answer, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


def _error_paths(errors, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested serializer errors as the read API's flat {"json.path": [messages]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            path = prefix if key == "non_field_errors" else (f"{prefix}.{key}" if prefix else str(key))
            for sub_path, messages in _error_paths(value, path).items():
                flat.setdefault(sub_path, []).extend(messages)
    elif isinstance(errors, list) and errors and all(isinstance(item, str) for item in errors):
        flat[prefix] = [str(item) for item in errors]
    elif isinstance(errors, list):
        for index, value in enumerate(errors):
            for sub_path, messages in _error_paths(value, f"{prefix}[{index}]").items():
                flat.setdefault(sub_path, []).extend(messages)
    else:
        flat[prefix] = [str(errors)]
    return flat


class IsAdminRole(BasePermission):
    """The user holds the admin role (answer keys are the reference every reader is scored against)."""

    message = "Only admins can make answer keys."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and is_admin(request.user))


class MaskProposalView(ReadingAPIView):
    """A lesion's mask proposed from a line, a tap or a corrected slice: readers on cases they hold or have
    read, admins on gold cases (the answer-key page takes no lease); 404 for anyone else."""

    # Readers ask on cases they hold or read; admins on gold cases, for their answer keys (no reader profile needed).
    permission_classes = [IsReader | IsAdminRole]

    @extend_schema(
        request=s.MaskProposalRequestSerializer,
        responses={
            200: s.MaskProposalSerializer,
            400: s.ErrorsSerializer,
            404: s.DetailSerializer,
            422: s.DetailSerializer,
            429: s.DetailSerializer,
            503: s.DetailSerializer,
        },
        summary="Propose a lesion's mask from my line, a tap, or a slice I corrected",
    )
    def post(self, request: Request, case_id: int) -> Response:
        serializer = s.MaskProposalRequestSerializer(data=request.data)
        if not serializer.is_valid():
            return _errors(_error_paths(serializer.errors))
        data = serializer.validated_data
        if data.get("long_axis") is not None:
            prompt = segmentation.LinePrompt(long_axis=dict(data["long_axis"]), short_axis=data.get("short_axis"))
        elif data.get("tap") is not None:
            prompt = segmentation.TapPrompt(**data["tap"])
        else:
            prompt = segmentation.SeedMaskPrompt(**data["seed_mask"])
        try:
            proposal = segmentation.propose_mask(
                user=request.user, case_id=case_id, prompt=prompt, propagate_3d=data["propagate"]
            )
        except segmentation.TooManyProposals as exc:
            return Response(
                {"detail": str(exc)},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(exc.retry_after_s)},
            )
        except segmentation.CaseNotFound:
            return Response({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
        except segmentation.ProposalRefused as exc:
            return _errors(exc.errors)
        except segmentation.NoLesionHere as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        except segmentation.ProposalTimedOut as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(
            {
                "prompt": proposal.prompt,
                "algorithm": proposal.algorithm,
                "algorithm_version": proposal.algorithm_version,
                "mask": {"slices": proposal.slices},
                "seed": proposal.seed,
                "largest": proposal.largest,
                "long_axis": proposal.long_axis,
                "short_axis": proposal.short_axis,
                "volume_mm3": proposal.volume_mm3,
                "stopped": proposal.stopped,
                "elapsed_s": proposal.elapsed_s,
            }
        )


class LeaderboardView(ReadingAPIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: s.LeaderboardSerializer}, auth=[], summary="Top readers and teams by reads")
    def get(self, request: Request) -> Response:
        message = leaderboard.leaderboard_message()
        return Response({key: message[key] for key in ("entries", "teams", "total_reads", "readers")})


class TeamSuggestionsView(ReadingAPIView):
    """Existing teams matching what a person is typing at sign-up (public: team names are on the board)."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    counts_as_activity = False

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q", OpenApiTypes.STR, description="what was typed; matched ignoring case and spacing", required=False
            )
        ],
        responses={200: s.TeamSuggestionSerializer(many=True)},
        auth=[],
        summary="Suggest existing teams for the sign-up form",
    )
    def get(self, request: Request) -> Response:
        typed = request.query_params.get("q", "")[: teams.MAX_TEAM_NAME]
        found = teams.suggest_teams(typed=typed)
        return Response([{"name": team.name, "readers": team.members} for team in found])


class AnswerKeyView(APIView):
    """An admin's answer key of a gold case (docs/read-format.md): the case as the page reads it, and saving."""

    authentication_classes = [ReaderSessionAuthentication, TokenAuthentication]
    permission_classes = [IsAdminRole]

    @extend_schema(
        responses={
            200: s.AnswerKeyCaseSerializer,
            401: s.DetailSerializer,
            403: s.DetailSerializer,
            404: s.DetailSerializer,
        },
        summary="A gold case with its current answer key (admins)",
    )
    def get(self, request: Request, case_id: int) -> Response:
        case = get_object_or_404(Case.objects.select_related("task", "series__study"), pk=case_id)
        if not case.is_gold:
            return Response({"detail": f"case {case.pk} is not a gold case"}, status=status.HTTP_404_NOT_FOUND)
        key = answer_keys.answer_key_read(case=case)
        return Response(
            {
                **case_for_reading(case=case, lease=None),
                "answer_key": key.document if key else None,
                "answer_key_saved": answer_keys.answer_key_meta(key),
            }
        )

    @extend_schema(
        request=s.ReadDocumentSerializer,
        responses={
            201: s.AnswerKeySavedSerializer,
            200: s.AnswerKeySavedSerializer,
            400: s.ErrorsSerializer,
            401: s.DetailSerializer,
            403: s.DetailSerializer,
            404: s.DetailSerializer,
            409: s.DetailSerializer,
        },
        summary="Save the answer key of a gold case (admins; idempotent by client_uuid)",
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = get_object_or_404(Case.objects.select_related("task", "series"), pk=case_id)
        try:
            with transaction.atomic():
                result = submission.submit_answer_key(user=request.user, case=case, document=request.data)
        except NotGoldCase as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)
        except ReadValidationError as exc:
            return _errors(exc.errors)
        except ReadConflict as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(
            result.summary,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


def case_for_reading(*, case: Case, lease: Lease | None) -> dict:
    """Return the CaseForReading object: the task's rules and the images, never anyone's marks (a model's may be)."""
    task = case.task
    series = case.series
    images = case_images(case)
    answer = {
        "id": case.pk,
        "label": case.label or f"Case {case.pk}",
        "task": {
            "id": task.pk,
            "name": task.name,
            "tools": list(task.tools or []),
            "max_lesions_per_case": task.max_lesions_per_case,
            "instructions_html": instructions_html(task),
            "kind": task.kind,
            "questions": task_questions_payload(task),
        },
        "lease_expires_at": lease.expires_at if lease else None,
        "study_instance_uid": images["study_instance_uid"],
        "series_instance_uid": images["series_instance_uid"],
        "modality": series.modality,
        "wadors_root": images["wadors_root"],
        "instances": images["instances"],
        "window_presets": window_presets(series),
    }
    if task.is_follow_up:
        answer["follow_up"] = time_points.follow_up_payload(case=case, reader=lease.reader if lease else None)
    # Readers of a "check the model" task start from the model's masks; answer-key pages (no lease) never do.
    suggestion = suggestion_document(case=case) if lease is not None else None
    if suggestion is not None:
        answer["suggestion"] = suggestion
    return answer


def case_images(case: Case) -> dict:
    """Where the page finds a case's images: its study and series, the DICOMweb root and the instances."""
    series = case.series
    return {
        "study_instance_uid": series.study.study_instance_uid,
        "series_instance_uid": series.series_instance_uid,
        "wadors_root": WADORS_ROOT,
        "instances": case_instance_summaries(case),
    }
