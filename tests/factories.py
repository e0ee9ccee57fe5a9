"""factory_boy factories for users, readers, tasks, cases and reads."""

from __future__ import annotations

import uuid

import factory
from django.contrib.auth import get_user_model

from annotations.models import Case, Read, Reader, Task
from annotations.services.roles import ADMIN, READER, RESEARCHER, grant_role


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-123456")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        for role in extracted or []:
            grant_role(self, role)
        if create:
            self.save()


class ReaderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reader

    user = factory.SubFactory(UserFactory, roles=[READER])
    display_name = factory.Sequence(lambda n: f"Reader {n}")
    role = "trainee"
    years_experience = 3


def admin_user(**kwargs):
    return UserFactory(roles=[ADMIN], **kwargs)


def researcher_user(**kwargs):
    return UserFactory(roles=[RESEARCHER], **kwargs)


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    name = factory.Sequence(lambda n: f"Task {n}")
    instructions_md = "Measure the largest lesion."
    reads_per_case = 3


class CaseFactory(factory.django.DjangoModelFactory):
    """Needs a series: pass series=... (e.g. the small_ct_series fixture)."""

    class Meta:
        model = Case

    task = factory.SubFactory(TaskFactory)
    label = factory.Sequence(lambda n: f"Case {n}")


class ReadFactory(factory.django.DjangoModelFactory):
    """A bare read record; services.reads builds real ones from a read document."""

    class Meta:
        model = Read

    client_uuid = factory.LazyFunction(uuid.uuid4)
    reader = factory.SubFactory(ReaderFactory)
    document = factory.LazyFunction(dict)
