from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "annotations"
    verbose_name = "Tasks, reads, consensus and exports"

    def ready(self) -> None:
        # Console dashboards follow saved reads and consensus through post_save receivers.
        from annotations import checks  # noqa: F401  (registers the deployment checks)
        from annotations.console import live  # noqa: F401
