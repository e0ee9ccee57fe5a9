from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "annotations"
    verbose_name = "Tasks, reads, consensus and exports"

    def ready(self) -> None:
        # Console dashboards follow saved reads and consensus through post_save receivers.
        from annotations import checks  # noqa: F401  (registers the deployment checks)
        from annotations.console import live  # noqa: F401
        from annotations.predictions.reviews import on_read_stored
        from annotations.reading.signals import read_stored

        # Reading cannot import predictions (predictions builds on reading), so it says a read was stored and
        # predictions records, in the same transaction, what the read made of the model's suggestion.
        read_stored.connect(on_read_stored, dispatch_uid="record-suggestion-review")
