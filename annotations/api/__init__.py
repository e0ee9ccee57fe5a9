"""REST API of the reading workflow."""
