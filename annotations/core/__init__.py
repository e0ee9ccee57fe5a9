"""Pure numeric cores: no Django, no other part of the project."""
