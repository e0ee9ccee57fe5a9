"""DICOMweb views (PS3.18): QIDO-RS search, WADO-RS metadata, instances, frames, rendered, thumbnails.

Thin views: authenticate (Django session or DRF token), look the resource up
through viewer.selectors (which applies the access policy), negotiate the media
type, and send bytes that viewer.dicomweb.delivery built and cached. Errors are
JSON naming the problem: 400 bad parameter, 401 anonymous, 404 unknown or not
visible, 406 unsupported Accept, 422 undecodable pixels (logged). Views must never
decode pixels or build DICOM JSON themselves.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Callable, Iterator

import pydicom
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET
from pydicom.datadict import dictionary_keyword, keyword_for_tag, tag_for_keyword
from pydicom.uid import ExplicitVRLittleEndian

from viewer import selectors
from viewer.dicomweb import access, delivery, multipart
from viewer.models import Instance
from viewer.services import dicom_json
from viewer.services.frame_codecs import LOSSLESS_MEDIA_TYPE, LOSSLESS_TRANSFER_SYNTAX
from viewer.services.pixels import (
    FRAME_MEDIA_TYPES,
    NATIVE_TRANSFER_SYNTAX,
    UndecodablePixelsError,
    parse_viewport,
    parse_window,
)
from viewer.services.stored_files import local_path

logger = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
IMMUTABLE = "private, max-age=31536000, immutable"
# Series can gain instances on a later import, so metadata is revalidated (cheaply, by ETag).
REVALIDATE = "private, no-cache"
NATIVE_EQUIVALENT_SYNTAXES = {None, "*", NATIVE_TRANSFER_SYNTAX, "1.2.840.10008.1.2"}
RENDERED_TYPES = ("image/jpeg", "image/png")
STREAM_CHUNK_BYTES = 1 << 20


class DicomwebError(Exception):
    """An error answered as JSON: HTTP status, a short code and a sentence naming the problem."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def error_response(status: int, code: str, detail: str) -> JsonResponse:
    response = JsonResponse({"error": code, "detail": detail, "status": status}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Token realm="dicomweb"'
    return response


def dicomweb_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Authenticate, then turn the service's exceptions into JSON errors with the right status."""

    @require_GET
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            request.dicomweb_user = access.request_user(request)
            return view(request, *args, **kwargs)
        except access.NotAuthenticatedError as error:
            return error_response(401, "not_authenticated", str(error))
        except DicomwebError as error:
            return error_response(error.status, error.code, error.detail)
        except selectors.NotVisibleError as error:
            return error_response(404, "not_found", str(error))
        except UndecodablePixelsError as error:
            logger.warning("undecodable pixel data at %s: %s", request.path, error)
            return error_response(422, "undecodable_pixel_data", str(error))
        except ValueError as error:
            return error_response(400, "bad_request", str(error))

    return wrapper


def _service_root(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("dicomweb:studies")).removesuffix("/studies")


# --- conditional requests ---------------------------------------------------------------


def _not_modified(request: HttpRequest, etag: str, cache_control: str) -> HttpResponse | None:
    """Return a 304 when the client's If-None-Match names this ETag."""
    header = request.headers.get("If-None-Match")
    if not header:
        return None
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    if "*" in tags or etag in tags:
        response = HttpResponse(status=304)
        response["ETag"] = etag
        response["Cache-Control"] = cache_control
        return response
    return None


def _finish(response: HttpResponse, *, etag: str | None, cache_control: str) -> HttpResponse:
    if etag:
        response["ETag"] = etag
    response["Cache-Control"] = cache_control
    response["Vary"] = "Accept, Authorization, Cookie"
    return response


# --- QIDO-RS ----------------------------------------------------------------------------

QIDO_CONTROL_KEYS = {"limit", "offset", "includefield", "fuzzymatching"}


def _require_json(request: HttpRequest) -> None:
    ranges = multipart.parse_accept(request.headers.get("Accept"))
    if not any(r.matches(DICOM_JSON) or r.matches("application/json") for r in ranges):
        raise DicomwebError(
            406, "not_acceptable", f"this resource is {DICOM_JSON}; Accept was {request.headers.get('Accept')!r}"
        )


def _qido_query(request: HttpRequest, matching: dict[str, tuple[str, str]]) -> tuple[list[Q], selectors.Page, list]:
    """Parse QIDO query parameters into filters and a page; return warnings for keys we do not match on."""
    filters, warnings = [], []
    limit, offset = None, 0
    for key, values in request.GET.lists():
        value = values[-1]
        if key == "limit":
            limit = _non_negative_int(key, value)
            continue
        if key == "offset":
            offset = _non_negative_int(key, value)
            continue
        if key == "fuzzymatching":
            if value.lower() not in ("true", "false"):
                raise ValueError(f"fuzzymatching must be true or false, got {value!r}")
            if value.lower() == "true":
                warnings.append("299 Readerboard: fuzzymatching is not supported; only literal matching was done")
            continue
        if key == "includefield":
            for field in ",".join(values).split(","):
                if field and field != "all" and not _keyword(field):
                    raise ValueError(f"includefield names an unknown attribute {field!r}")
            continue
        keyword = _keyword(key)
        if keyword is None:
            raise ValueError(f"unknown query parameter {key!r}: not a DICOM keyword, tag or QIDO-RS control")
        if not value:
            continue  # universal matching
        if keyword in matching:
            filters.append(selectors.matching_filter(matching, keyword, value))
        else:
            warnings.append(f"299 Readerboard: {keyword} is not a matching key at this level and was ignored")
    return filters, selectors.Page(limit=limit, offset=offset), warnings


def _keyword(key: str) -> str | None:
    if tag_for_keyword(key) is not None:
        return key
    if len(key) == 8:
        try:
            return keyword_for_tag(int(key, 16)) or dictionary_keyword(int(key, 16))
        except (ValueError, KeyError):
            return None
    return None


def _non_negative_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return number


def _json_response(payload: bytes, *, warnings: list[str] | None = None) -> HttpResponse:
    response = HttpResponse(payload, content_type=DICOM_JSON)
    for warning in warnings or []:
        response.headers["Warning"] = warning
    return _finish(response, etag=None, cache_control=REVALIDATE)


def _dumps(documents: list[dict]) -> bytes:
    import json

    return json.dumps(documents, separators=(",", ":")).encode()


@dicomweb_view
def search_studies(request: HttpRequest) -> HttpResponse:
    _require_json(request)
    filters, page, warnings = _qido_query(request, selectors.STUDY_MATCHING)
    root = _service_root(request)
    rows = selectors.search_studies(user=request.dicomweb_user, filters=filters, page=page)
    documents = [
        dicom_json.study_attributes(study, base_url=root, modalities=mods, series_count=n_series, instance_count=n_inst)
        for study, mods, n_series, n_inst in rows
    ]
    return _json_response(_dumps(documents), warnings=warnings)


@dicomweb_view
def search_series(request: HttpRequest, study_uid: str | None = None) -> HttpResponse:
    _require_json(request)
    if study_uid is not None:
        selectors.study_for(user=request.dicomweb_user, study_uid=study_uid)
    filters, page, warnings = _qido_query(request, selectors.SERIES_MATCHING)
    root = _service_root(request)
    rows = selectors.search_series(user=request.dicomweb_user, filters=filters, page=page, study_uid=study_uid)
    documents = [
        dicom_json.series_attributes(series, base_url=root, study_uid=series.study.study_instance_uid, instance_count=n)
        for series, n in rows
    ]
    return _json_response(_dumps(documents), warnings=warnings)


@dicomweb_view
def search_instances(request: HttpRequest, study_uid: str | None = None, series_uid: str | None = None) -> HttpResponse:
    _require_json(request)
    if series_uid is not None:
        selectors.series_for(user=request.dicomweb_user, study_uid=study_uid, series_uid=series_uid)
    elif study_uid is not None:
        selectors.study_for(user=request.dicomweb_user, study_uid=study_uid)
    filters, page, warnings = _qido_query(request, selectors.INSTANCE_MATCHING)
    root = _service_root(request)
    instances = selectors.search_instances(
        user=request.dicomweb_user, filters=filters, page=page, study_uid=study_uid, series_uid=series_uid
    )
    documents = [
        dicom_json.instance_attributes(
            instance,
            base_url=root,
            study_uid=instance.series.study.study_instance_uid,
            series_uid=instance.series.series_instance_uid,
        )
        for instance in instances
    ]
    return _json_response(_dumps(documents), warnings=warnings)


# --- WADO-RS metadata ------------------------------------------------------------------------


@dicomweb_view
def series_metadata(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponse:
    _require_json(request)
    series = access.visible_series(user=request.dicomweb_user, study_uid=study_uid, series_uid=series_uid)
    version = access.series_version(series)
    root = _service_root(request)
    etag = delivery.strong_etag("series-metadata", series_uid, version, root)
    if (cached := _not_modified(request, etag, REVALIDATE)) is not None:
        return cached
    document, _ = delivery.series_metadata_json(series, version=version)
    response = HttpResponse(delivery.with_base_url(document, root), content_type=DICOM_JSON)
    return _finish(response, etag=etag, cache_control=REVALIDATE)


@dicomweb_view
def study_metadata(request: HttpRequest, study_uid: str) -> HttpResponse:
    _require_json(request)
    selectors.study_for(user=request.dicomweb_user, study_uid=study_uid)
    root = _service_root(request)
    rows = selectors.search_series(
        user=request.dicomweb_user, filters=[], page=selectors.Page(None, 0), study_uid=study_uid
    )
    documents = []
    for series, _count in rows:
        document, _ = delivery.series_metadata_json(series)
        if len(document) > 2:
            documents.append(document[1:-1])
    body = delivery.with_base_url(b"[" + b",".join(documents) + b"]", root)
    return _finish(HttpResponse(body, content_type=DICOM_JSON), etag=None, cache_control=REVALIDATE)


@dicomweb_view
def instance_metadata(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponse:
    _require_json(request)
    instance = _instance(request, study_uid, series_uid, sop_uid)
    root = _service_root(request)
    etag = delivery.strong_etag("instance-metadata", sop_uid, root)
    if (cached := _not_modified(request, etag, IMMUTABLE)) is not None:
        return cached
    document = delivery.instance_metadata_json(instance, study_uid=study_uid, series_uid=series_uid)
    body = b"[" + delivery.with_base_url(document, root) + b"]"
    return _finish(HttpResponse(body, content_type=DICOM_JSON), etag=etag, cache_control=IMMUTABLE)


def _instance(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> Instance:
    return access.visible_instance(
        user=request.dicomweb_user, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid
    )


# --- WADO-RS frames ---------------------------------------------------------------------------


def parse_frame_list(text: str) -> list[int]:
    """Parse the `{frames}` path segment (1-based, comma separated); raise ValueError naming the fault."""
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"frame list must be comma-separated positive integers, got {text!r}") from None
    if any(number < 1 for number in numbers):
        raise ValueError(f"frame numbers start at 1, got {text!r}")
    return numbers


def _negotiate_frames(request: HttpRequest, instance: Instance, frame_count: int) -> tuple[str, bool, str]:
    """Return (form 'native'|'lossless'|'stored', multipart?, part media type) for the client's Accept header.

    `transfer-syntax=*` (what Cornerstone and OHIF send) lets the server choose (PS3.18 8.7.3.5):
    JPEG-LS lossless of the native frame when it can be encoded, so the viewer gets the same
    pixels in about a third of the bytes, else native. Native and the stored form stay
    available when asked for by their transfer syntax.
    """
    stored_syntax = instance.transfer_syntax_uid
    stored_type = FRAME_MEDIA_TYPES.get(stored_syntax)
    lossless_ok = delivery.can_send_lossless(instance)
    lossless = ("lossless", True, LOSSLESS_MEDIA_TYPE)
    for media_range in multipart.parse_accept(request.headers.get("Accept")):
        wanted_syntax = media_range.transfer_syntax
        if media_range.media_type in ("multipart/related", "multipart/*", "*/*"):
            part_type = media_range.part_type or "application/octet-stream"
            if multipart.media_type_matches(part_type, "application/octet-stream"):
                if wanted_syntax == "*" and lossless_ok:
                    return lossless
                if wanted_syntax in NATIVE_EQUIVALENT_SYNTAXES:
                    return "native", True, "application/octet-stream"
                if wanted_syntax == LOSSLESS_TRANSFER_SYNTAX and lossless_ok:
                    return lossless
                if wanted_syntax == stored_syntax and stored_type:
                    return "stored", True, "application/octet-stream"
            if (
                lossless_ok
                and multipart.media_type_matches(part_type, LOSSLESS_MEDIA_TYPE)
                and wanted_syntax in (None, "*", LOSSLESS_TRANSFER_SYNTAX)
            ):
                return lossless
            stored_type_ok = stored_type and multipart.media_type_matches(part_type, stored_type)
            if stored_type_ok and wanted_syntax in (None, "*", stored_syntax):
                return "stored", True, stored_type
        elif frame_count == 1:
            # A single-part response (PS3.18 8.7.3.5): one frame, native or JPEG-LS.
            if media_range.media_type == "application/octet-stream" and wanted_syntax in NATIVE_EQUIVALENT_SYNTAXES:
                return "native", False, "application/octet-stream"
            if (
                lossless_ok
                and media_range.media_type == LOSSLESS_MEDIA_TYPE
                and wanted_syntax in (None, "*", LOSSLESS_TRANSFER_SYNTAX)
            ):
                return "lossless", False, LOSSLESS_MEDIA_TYPE
    offered = ['multipart/related; type="application/octet-stream"; transfer-syntax=' + NATIVE_TRANSFER_SYNTAX]
    if lossless_ok:
        offered.append(f'multipart/related; type="{LOSSLESS_MEDIA_TYPE}"; transfer-syntax={LOSSLESS_TRANSFER_SYNTAX}')
    if stored_type:
        offered.append(f'multipart/related; type="{stored_type}"; transfer-syntax={stored_syntax}')
    raise DicomwebError(
        406,
        "not_acceptable",
        f"cannot send frames as {request.headers.get('Accept')!r}; available: {', '.join(offered)}",
    )


FRAME_READERS = {
    "native": (delivery.native_frame, NATIVE_TRANSFER_SYNTAX),
    "lossless": (delivery.lossless_frame, LOSSLESS_TRANSFER_SYNTAX),
    "stored": (delivery.stored_frame, None),
}


@dicomweb_view
def frames(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame_list: str) -> HttpResponse:
    numbers = parse_frame_list(frame_list)
    instance = _instance(request, study_uid, series_uid, sop_uid)
    for number in numbers:
        delivery.check_frame_number(instance, number)
    form, is_multipart, part_type = _negotiate_frames(request, instance, len(numbers))
    read, syntax = FRAME_READERS[form]
    syntax = syntax or instance.transfer_syntax_uid
    etag = delivery.strong_etag("frames", sop_uid, frame_list, form, part_type, str(is_multipart))
    if (cached := _not_modified(request, etag, IMMUTABLE)) is not None:
        return cached
    payloads = [read(instance, frame_number=number) for number in numbers]
    if not is_multipart:
        response = HttpResponse(payloads[0], content_type=f"{part_type}; transfer-syntax={syntax}")
        return _finish(response, etag=etag, cache_control=IMMUTABLE)
    boundary = multipart.new_boundary()
    part_content_type = f"{part_type}; transfer-syntax={syntax}"
    body = multipart.encode_multipart([(part_content_type, payload) for payload in payloads], boundary=boundary)
    response = HttpResponse(
        body, content_type=multipart.content_type(part_type=part_type, boundary=boundary, transfer_syntax=syntax)
    )
    return _finish(response, etag=etag, cache_control=IMMUTABLE)


@dicomweb_view
def bulkdata(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, tag: str) -> HttpResponse:
    instance = _instance(request, study_uid, series_uid, sop_uid)
    boundary = multipart.new_boundary()
    if tag.upper() == "7FE00010":
        payload = b"".join(
            delivery.native_frame(instance, frame_number=number) for number in range(1, instance.number_of_frames + 1)
        )
        part_type = f"application/octet-stream; transfer-syntax={NATIVE_TRANSFER_SYNTAX}"
    else:
        ds = pydicom.dcmread(str(local_path(instance)), stop_before_pixels=True)
        element = ds.get(int(tag, 16))
        if element is None or not isinstance(element.value, bytes):
            raise DicomwebError(404, "not_found", f"instance {sop_uid} has no top-level bulk data element {tag}")
        payload = element.value
        part_type = "application/octet-stream"
    body = multipart.encode_multipart([(part_type, payload)], boundary=boundary)
    response = HttpResponse(
        body, content_type=multipart.content_type(part_type="application/octet-stream", boundary=boundary)
    )
    return _finish(response, etag=delivery.strong_etag("bulk", sop_uid, tag), cache_control=IMMUTABLE)


# --- WADO-RS instances (application/dicom) -----------------------------------------------------


def _negotiate_dicom(request: HttpRequest, instances: list[Instance]) -> str:
    """Return the transfer syntax to send ('*' keeps each stored one) for an application/dicom retrieval."""
    for media_range in multipart.parse_accept(request.headers.get("Accept")):
        if media_range.media_type in ("multipart/related", "multipart/*", "*/*"):
            part_type = media_range.part_type or "application/dicom"
            if not multipart.media_type_matches(part_type, "application/dicom"):
                continue
            wanted = media_range.transfer_syntax
            if media_range.media_type == "*/*" or wanted == "*":
                return "*"
            wanted = wanted or ExplicitVRLittleEndian
            if wanted == ExplicitVRLittleEndian or all(i.transfer_syntax_uid == wanted for i in instances):
                return wanted
    raise DicomwebError(
        406,
        "not_acceptable",
        f"cannot send instances as {request.headers.get('Accept')!r}; available: "
        'multipart/related; type="application/dicom"; transfer-syntax=* (as stored) or '
        f"transfer-syntax={ExplicitVRLittleEndian}",
    )


def _dicom_file_chunks(instance: Instance, transfer_syntax: str) -> Iterator[bytes]:
    if transfer_syntax in ("*", instance.transfer_syntax_uid):
        with open(local_path(instance), "rb") as handle:
            while chunk := handle.read(STREAM_CHUNK_BYTES):
                yield chunk
        return
    ds = pydicom.dcmread(str(local_path(instance)))
    try:
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress()
        else:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    except Exception as error:  # noqa: BLE001 - decoder failures are reported as undecodable
        raise UndecodablePixelsError(f"instance {instance.sop_instance_uid} cannot be decompressed: {error}") from None
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    yield buffer.getvalue()


def _dicom_multipart(instances: list[Instance], transfer_syntax: str) -> StreamingHttpResponse:
    if not instances:
        raise DicomwebError(404, "not_found", "no instances to retrieve")
    # Transcode the first one eagerly so a decode failure is a 422, not a broken stream.
    first = list(_dicom_file_chunks(instances[0], transfer_syntax)) if transfer_syntax != "*" else None
    boundary = multipart.new_boundary()

    def parts():
        for index, instance in enumerate(instances):
            syntax = instance.transfer_syntax_uid if transfer_syntax == "*" else transfer_syntax
            chunks = first if index == 0 and first is not None else _dicom_file_chunks(instance, transfer_syntax)
            yield f"application/dicom; transfer-syntax={syntax}", chunks

    response = StreamingHttpResponse(
        multipart.iter_multipart(parts(), boundary=boundary),
        content_type=multipart.content_type(part_type="application/dicom", boundary=boundary),
    )
    return _finish(response, etag=None, cache_control=IMMUTABLE)


@dicomweb_view
def retrieve_instance(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponse:
    instance = _instance(request, study_uid, series_uid, sop_uid)
    syntax = _negotiate_dicom(request, [instance])
    etag = delivery.strong_etag("instance", sop_uid, syntax)
    if (cached := _not_modified(request, etag, IMMUTABLE)) is not None:
        return cached
    response = _dicom_multipart([instance], syntax)
    response["ETag"] = etag
    return response


@dicomweb_view
def retrieve_series(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponse:
    series = selectors.series_for(user=request.dicomweb_user, study_uid=study_uid, series_uid=series_uid)
    instances = selectors.series_instances(series=series)
    response = _dicom_multipart(instances, _negotiate_dicom(request, instances))
    response["Cache-Control"] = REVALIDATE
    return response


@dicomweb_view
def retrieve_study(request: HttpRequest, study_uid: str) -> HttpResponse:
    selectors.study_for(user=request.dicomweb_user, study_uid=study_uid)
    instances = selectors.search_instances(
        user=request.dicomweb_user, filters=[], page=selectors.Page(None, 0), study_uid=study_uid
    )
    response = _dicom_multipart(instances, _negotiate_dicom(request, instances))
    response["Cache-Control"] = REVALIDATE
    return response


# --- rendered and thumbnails ---------------------------------------------------------------------


def negotiate_rendered(request: HttpRequest) -> str:
    """Return image/jpeg or image/png from the `accept` query parameter or the Accept header."""
    header = request.GET.get("accept") or request.headers.get("Accept")
    for media_range in multipart.parse_accept(header):
        for media_type in RENDERED_TYPES:
            if media_range.matches(media_type):
                return media_type
    raise DicomwebError(406, "not_acceptable", f"cannot render as {header!r}; available: {', '.join(RENDERED_TYPES)}")


def _rendered_options(request: HttpRequest):
    window = parse_window(request.GET["window"]) if request.GET.get("window") else None
    viewport = parse_viewport(request.GET["viewport"]) if request.GET.get("viewport") else None
    quality = 90
    if request.GET.get("quality"):
        quality = _non_negative_int("quality", request.GET["quality"])
        if not 1 <= quality <= 100:
            raise ValueError(f"quality must be 1..100, got {quality}")
    return window, viewport, quality


def _rendered_response(request: HttpRequest, instance: Instance, frame_number: int) -> HttpResponse:
    delivery.check_frame_number(instance, frame_number)
    media_type = negotiate_rendered(request)
    window, viewport, quality = _rendered_options(request)
    key = delivery.rendered_key(
        instance, frame_number=frame_number, window=window, viewport=viewport, media_type=media_type, quality=quality
    )
    etag = delivery.strong_etag("rendered", key)
    if (cached := _not_modified(request, etag, IMMUTABLE)) is not None:
        return cached
    body = delivery.rendered_frame(
        instance, frame_number=frame_number, window=window, viewport=viewport, media_type=media_type, quality=quality
    )
    return _finish(HttpResponse(body, content_type=media_type), etag=etag, cache_control=IMMUTABLE)


@dicomweb_view
def rendered_instance(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponse:
    return _rendered_response(request, _instance(request, study_uid, series_uid, sop_uid), 1)


@dicomweb_view
def rendered_frame(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame_list: str
) -> HttpResponse:
    numbers = parse_frame_list(frame_list)
    if len(numbers) != 1:
        raise ValueError(f"rendered frames are one image each; ask for one frame number, got {frame_list!r}")
    return _rendered_response(request, _instance(request, study_uid, series_uid, sop_uid), numbers[0])


@dicomweb_view
def instance_thumbnail(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponse:
    request.GET = request.GET.copy()
    request.GET.setdefault("viewport", f"{delivery.THUMBNAIL_SIZE},{delivery.THUMBNAIL_SIZE}")
    instance = _instance(request, study_uid, series_uid, sop_uid)
    return _rendered_response(request, instance, (instance.number_of_frames + 1) // 2)


@dicomweb_view
def frame_thumbnail(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame_list: str
) -> HttpResponse:
    numbers = parse_frame_list(frame_list)
    request.GET = request.GET.copy()
    request.GET.setdefault("viewport", f"{delivery.THUMBNAIL_SIZE},{delivery.THUMBNAIL_SIZE}")
    return _rendered_response(request, _instance(request, study_uid, series_uid, sop_uid), numbers[0])


def series_thumbnail_response(request: HttpRequest, series) -> HttpResponse:
    """Answer a series thumbnail (shared by the DICOMweb and /api/images/ routes)."""
    media_type = negotiate_rendered(request)
    version = access.series_version(series)
    etag = delivery.strong_etag("series-thumbnail", series.series_instance_uid, version, media_type)
    if (cached := _not_modified(request, etag, REVALIDATE)) is not None:
        return cached
    try:
        body = delivery.series_thumbnail(series, media_type=media_type)
    except LookupError as error:
        raise DicomwebError(404, "not_found", str(error)) from None
    return _finish(HttpResponse(body, content_type=media_type), etag=etag, cache_control=REVALIDATE)


@dicomweb_view
def series_thumbnail(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponse:
    series = access.visible_series(user=request.dicomweb_user, study_uid=study_uid, series_uid=series_uid)
    return series_thumbnail_response(request, series)


@dicomweb_view
def series_thumbnail_by_id(request: HttpRequest, series_id: int) -> HttpResponse:
    """The thumbnail of a series by its database id (console lists, task pickers)."""
    series = selectors.visible_series(user=request.dicomweb_user).filter(pk=series_id).select_related("study").first()
    if series is None:
        raise selectors.NotVisibleError(f"series {series_id} not found")
    return series_thumbnail_response(request, series)
