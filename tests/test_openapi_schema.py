"""docs/openapi.yaml is the schema the server serves: regenerate it when an API changes."""

from pathlib import Path

from django.core.management import call_command

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"


def test_committed_openapi_schema_is_current(tmp_path):
    generated = tmp_path / "openapi.yaml"

    call_command("spectacular", "--file", str(generated), "--validate")

    assert generated.read_text() == SCHEMA.read_text(), (
        "the API changed: run `.venv/bin/python manage.py spectacular --file docs/openapi.yaml`"
    )
