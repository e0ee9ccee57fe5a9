"""Reader PINs: a keyed hash written only for readers, older PBKDF2 hashes migrated at sign-in."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password
from django.core.cache import cache

from annotations.booth import pin_credentials, readers
from annotations.booth.roles import RESEARCHER, grant_role
from tests.factories import admin_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


def make_reader(name: str = "Dr Pin Test", pin: str = "2468"):
    return readers.register_reader(display_name=name, pin=pin, role="attending")


def stored_password(reader) -> str:
    return get_user_model().objects.get(pk=reader.user_id).password


def test_a_reader_pin_is_stored_as_a_salted_keyed_hash():
    reader = make_reader()

    algorithm, key_id, salt, mac = stored_password(reader).split("$")
    assert algorithm == "rb_pin_hmac" and key_id == pin_credentials.key_id()
    assert "2468" not in salt + mac and len(salt) >= 16
    assert reader.user.check_password("2468") and not reader.user.check_password("2469")


def test_two_readers_with_the_same_pin_have_different_hashes():
    first, second = make_reader("Dr One", pin="1111"), make_reader("Dr Two", pin="1111")

    assert stored_password(first) != stored_password(second)


def test_a_pin_hash_does_not_verify_without_the_server_key(settings):
    settings.READERBOARD_PIN_KEY = "a" * 40
    encoded = pin_credentials.hash_pin("2468")
    settings.READERBOARD_PIN_KEY = "b" * 40

    assert not pin_credentials.verify_pin("2468", encoded)


def test_the_pin_key_is_not_the_secret_key_and_changes_with_it(settings):
    settings.READERBOARD_PIN_KEY = ""
    derived = pin_credentials.pin_key()
    settings.SECRET_KEY = settings.SECRET_KEY + "-rotated"

    assert derived != settings.SECRET_KEY.encode() and pin_credentials.pin_key() != derived


def test_sign_up_and_sign_in_never_run_a_slow_hasher(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("PBKDF2 ran for a reader PIN")

    monkeypatch.setattr(PBKDF2PasswordHasher, "encode", refuse)
    monkeypatch.setattr(PBKDF2PasswordHasher, "verify", refuse)
    reader = make_reader()

    assert readers.authenticate_reader(display_name="Dr Pin Test", pin="2468") == reader
    with pytest.raises(readers.InvalidCredentials):
        readers.authenticate_reader(display_name="Dr Pin Test", pin="0000")
    with pytest.raises(readers.InvalidCredentials):
        readers.authenticate_reader(display_name="Nobody Here", pin="2468")


def test_a_legacy_pbkdf2_pin_is_replaced_by_the_keyed_hash_at_the_next_sign_in():
    reader = make_reader()
    reader.user.password = make_password("2468", hasher="pbkdf2_sha256")
    reader.user.save(update_fields=["password"])

    assert readers.authenticate_reader(display_name="Dr Pin Test", pin="2468") == reader

    assert pin_credentials.is_pin_hash(stored_password(reader))
    assert readers.authenticate_reader(display_name="Dr Pin Test", pin="2468") == reader


def test_a_wrong_pin_leaves_a_legacy_hash_as_it_was():
    reader = make_reader()
    legacy = make_password("2468", hasher="pbkdf2_sha256")
    reader.user.password = legacy
    reader.user.save(update_fields=["password"])

    with pytest.raises(readers.InvalidCredentials):
        readers.authenticate_reader(display_name="Dr Pin Test", pin="1111")

    assert stored_password(reader) == legacy


def test_a_researcher_with_a_reader_profile_keeps_the_strong_hash():
    reader = make_reader()
    grant_role(reader.user, RESEARCHER)
    strong = make_password("2468", hasher="pbkdf2_sha256")
    reader.user.password = strong
    reader.user.save(update_fields=["password"])

    assert readers.authenticate_reader(display_name="Dr Pin Test", pin="2468") == reader

    assert stored_password(reader) == strong


def test_admin_passwords_stay_on_djangos_default_hasher():
    admin = admin_user()
    admin.set_password("a long admin passphrase")
    admin.save()

    assert get_user_model().objects.get(pk=admin.pk).password.startswith("pbkdf2_sha256$")


def test_an_unusable_or_foreign_password_never_matches_a_pin():
    assert pin_credentials.check_stored_pin("2468", "!unusable") == (False, False)
    assert pin_credentials.check_stored_pin("2468", "") == (False, False)
    assert not pin_credentials.verify_pin("2468", "rb_pin_hmac$broken")
