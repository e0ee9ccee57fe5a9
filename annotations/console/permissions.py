"""Server-side role checks for every console page, JSON endpoint and socket.

Admins may do everything; researchers may look (collections, dashboards, results,
exports) but never change anything; readers and strangers get nothing. This module
must never decide a role from anything the browser sends: roles come from
annotations.booth.roles only.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse

from annotations.booth.roles import is_admin, is_researcher_or_admin

LOGIN_URL = "/console/login/"

View = Callable[..., HttpResponse]


def _guard(check: Callable[[object], bool], *, api: bool) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                if api:
                    return JsonResponse({"detail": "Authentication credentials were not provided."}, status=403)
                return redirect_to_login(request.get_full_path(), LOGIN_URL)
            if not check(request.user):
                if api:
                    return JsonResponse({"detail": "You do not have permission to perform this action."}, status=403)
                raise PermissionDenied("This page is for admins and researchers.")
            return view(request, *args, **kwargs)

        wrapped.console_role = "admin" if check is is_admin else "researcher"  # read by the role-check tests
        return wrapped

    return decorator


def staff_page(view: View) -> View:
    """A page researchers and admins may see."""
    return _guard(is_researcher_or_admin, api=False)(view)


def admin_page(view: View) -> View:
    """A page that changes things: admins only."""
    return _guard(is_admin, api=False)(view)


def staff_api(view: View) -> View:
    """A JSON endpoint researchers and admins may call."""
    return _guard(is_researcher_or_admin, api=True)(view)


def admin_api(view: View) -> View:
    """A JSON endpoint that changes things: admins only."""
    return _guard(is_admin, api=True)(view)
