"""`manage.py make_demo`: synthetic CT with known lesions, the Odd DICOM corpus, a demo task and logins."""

from django.core.management.base import BaseCommand

from annotations.demo.ct_demo import make_demo
from annotations.demo.real_size_demo import make_real_size_demo
from readerboard.command_logging import quiet_library_logs
from viewer.services.synthetic_ct import demo_patients


class Command(BaseCommand):
    help = "Create the demo (no network needed). Does nothing when the demo already exists."

    def add_arguments(self, parser):
        parser.add_argument(
            "--patients", type=int, default=4, help="Number of synthetic CT patients (3 to 5 is usual)."
        )
        parser.add_argument("--slices", type=int, default=60, help="Minimum slices per series.")
        parser.add_argument("--size", type=int, default=512, help="Rows and columns of each slice.")
        parser.add_argument("--no-odd-dicom", action="store_true", help="Skip pydicom's bundled test images.")
        parser.add_argument(
            "--real-size",
            action="store_true",
            help="Only add the real-size CT (520 slices of 512 x 512 at 1 mm) and its task; slow, so `make run` "
            "runs it in the background.",
        )
        parser.add_argument(
            "--no-simulated-study",
            action="store_true",
            help="Skip the closed task of simulated reads that shows consensus and agreement to researchers.",
        )
        parser.add_argument(
            "--no-questions",
            action="store_true",
            help="Do not ask lesion type and site on the booth task (the simulated study still answers them).",
        )
        parser.add_argument(
            "--no-nifti",
            action="store_true",
            help="Skip the ATLAS-like MR task imported from NIfTI volumes with label maps as answer keys.",
        )
        parser.add_argument(
            "--no-follow-up",
            action="store_true",
            help="Skip the follow-up demo (one patient per case at three dates, RECIST 1.1 responses).",
        )

    def handle(
        self,
        *args,
        patients,
        slices,
        size,
        no_odd_dicom,
        no_simulated_study,
        no_follow_up,
        no_nifti,
        no_questions,
        real_size,
        **options,
    ):
        quiet_library_logs(options["verbosity"])
        if real_size:
            task = make_real_size_demo()
            self.stdout.write(f"real-size demo ready: task {task.pk} ({task.name})")
            return
        summary = make_demo(
            patients=demo_patients(count=patients, slices=slices, rows=size, columns=size),
            include_odd_dicom=not no_odd_dicom,
            simulated_study=not no_simulated_study,
            follow_up=not no_follow_up,
            booth_questions=not no_questions,
            nifti=not no_nifti,
        )
        self.stdout.write("demo created" if summary.created else "demo already present")
        for line in summary.logins:
            self.stdout.write("  " + line)
