from django.apps import AppConfig


class ViewerConfig(AppConfig):
    name = "viewer"
    verbose_name = "DICOM viewer and image delivery"

    def ready(self) -> None:
        from viewer.dicomweb.delivery import keep_metadata_on_import
        from viewer.services.dicom_import import instance_imported

        instance_imported.connect(keep_metadata_on_import, dispatch_uid="keep-metadata-on-import")
