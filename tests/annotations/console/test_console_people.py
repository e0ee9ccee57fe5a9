"""Admins invite colleagues with a role and promote or demote users; nobody can lock themselves out."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from annotations.booth.roles import user_roles
from tests.factories import ReaderFactory, admin_user


@pytest.mark.django_db
def test_an_invited_researcher_sets_a_password_with_the_one_time_link_and_signs_in(client):
    client.force_login(admin_user())
    page = client.post(
        reverse("console:people"),
        {"action": "invite", "username": "dr.ng", "email": "ng@example.org", "role": "researcher"},
    ).content.decode()
    link = page.split('value="http://testserver')[1].split('"')[0]
    client.logout()

    client.post(link, {"new_password1": "a-long-pass-phrase", "new_password2": "a-long-pass-phrase"})
    signed_in = client.post(reverse("console:login"), {"username": "dr.ng", "password": "a-long-pass-phrase"})

    user = get_user_model().objects.get(username="dr.ng")
    assert user_roles(user) == {"researcher"}
    assert signed_in.status_code == 302
    assert client.get(reverse("console:home")).status_code == 200
    assert client.get(link).status_code == 400  # the link dies once used


@pytest.mark.django_db
def test_an_admin_promotes_a_reader_to_researcher(client):
    client.force_login(admin_user())
    reader = ReaderFactory()

    client.post(reverse("console:person-roles", args=[reader.user.id]), {"roles": ["reader", "researcher"]})

    reader.user.refresh_from_db()
    assert user_roles(get_user_model().objects.get(pk=reader.user.pk)) == {"reader", "researcher"}


@pytest.mark.django_db
def test_an_admin_cannot_remove_their_own_admin_role(client):
    admin = admin_user()
    client.force_login(admin)

    client.post(reverse("console:person-roles", args=[admin.id]), {"roles": ["reader"]})

    assert "admin" in user_roles(get_user_model().objects.get(pk=admin.pk))
