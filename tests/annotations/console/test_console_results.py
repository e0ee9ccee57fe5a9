"""Results pages for researchers: the consensus service's figures, plots, the pseudonymised reader table, case views
and the export controls."""

from __future__ import annotations

import re

import numpy as np
import pytest
from django.urls import resolve, reverse

from annotations.consensus import answer_selectors as answer_results
from annotations.consensus import case_consensus as consensus
from annotations.consensus import selectors as service_results
from annotations.console import results as console_results
from annotations.core.agreement import icc_absolute_agreement
from annotations.models import ExportJob, ReferenceLesion
from tests.annotations.consensus_builders import add_read, horizontal_line, instances
from tests.conftest import small_patient
from tests.factories import CaseFactory, ReaderFactory, TaskFactory, admin_user, researcher_user
from viewer.models import Series
from viewer.services.dicom_import import import_paths
from viewer.services.synthetic_ct import write_series

# Three spots far apart on the middle slice, measured by three readers (mm, 1 mm pixels).
SPOTS = [(23.5, 37.5), (45.0, 12.0), (12.0, 12.0)]
LENGTHS = np.array([[16.0, 9.0, 6.0], [17.0, 10.5, 6.5], [15.0, 8.0, 5.0]])  # readers x lesions


@pytest.fixture
def study(small_ct_series, tmp_path):
    """A task with a measured case (3 readers x 3 lesions) and a gold case with an admin's typed-in answer."""
    task = TaskFactory(reads_per_case=3)
    measured = CaseFactory(task=task, series=small_ct_series, label="Case 1")
    other = write_series(small_patient("RB-TEST-009", seed=9), tmp_path / "gold")
    import_paths(other.files, collection_name="Gold")
    gold_series = Series.objects.get(series_instance_uid=other.series_instance_uid)
    gold = CaseFactory(task=task, series=gold_series, label="Case 2", is_gold=True)
    ReferenceLesion.objects.create(
        series=gold_series,
        source="admin",
        center_patient_mm=[0.0, 0.0, 0.0],
        long_axis_mm=16.0,
        sop_instance_uid=instances(gold_series)[4].sop_instance_uid,
    )
    readers = [ReaderFactory() for _ in range(3)]
    for reader, lengths in zip(readers, LENGTHS, strict=True):
        add_read(
            measured,
            reader,
            lesions=[
                {"long": horizontal_line(center=spot, length_px=length)}
                for spot, length in zip(SPOTS, lengths, strict=True)
            ],
        )
    add_read(gold, readers[0], lesions=[{"long": horizontal_line(length_px=16.5)}])
    add_read(gold, readers[1], lesions=[{"long": horizontal_line(length_px=15.0)}])
    add_read(gold, readers[2], no_lesion=True)
    consensus.recompute_task_consensus(task=task)
    return task, measured, readers


@pytest.fixture
def researcher_client(client):
    client.force_login(researcher_user())
    return client


def page_of(client, task) -> str:
    response = client.get(reverse("console:task-results", args=[task.id]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_the_page_shows_the_services_icc_with_its_confidence_interval(researcher_client, study):
    task, _, _ = study
    expected = icc_absolute_agreement(LENGTHS.T)

    page = page_of(researcher_client, task)

    icc = service_results.task_agreement(task=task)["icc_long_axis"]
    assert icc["icc"] == pytest.approx(expected.icc)
    shown = re.search(r'id="icc">.*?<strong>([^<]+)</strong>\s*<span[^>]*>95 % CI ([^ ]+) to ([^ ]+) ·', page, re.S)
    assert shown.groups() == (f"{expected.icc:.2f}", f"{expected.ci95_low:.2f}", f"{expected.ci95_high:.2f}")
    assert "3 lesions × 3 readers" in page


@pytest.mark.django_db
def test_the_page_shows_fleiss_kappa_and_the_low_agreement_cases_from_the_service(researcher_client, study):
    task, _, _ = study
    agreement = service_results.task_agreement(task=task)
    flagged = [case for case in service_results.task_cases(task=task) if case["low_agreement"]]

    page = page_of(researcher_client, task)

    kappa = agreement["presence_kappa"]
    assert kappa["n_subjects"] == 2
    assert re.search(r'id="kappa">.*?<strong>([^<]+)</strong>', page, re.S).group(1) == f"{kappa['kappa']:.2f}"
    low_section = page.split('id="low-agreement"')[1].split("</section>")[0]
    for case in flagged:
        assert case["label"] in low_section
        for flag in case["flags"]:
            assert flag in low_section
    if not flagged:
        assert "No case is flagged." in low_section


@pytest.mark.django_db
def test_the_reader_table_shows_pseudonyms_reads_time_gold_accuracy_and_weight(researcher_client, study):
    task, _, readers = study

    page = page_of(researcher_client, task)

    table = page.split('id="readers"')[1].split("</table>")[0]
    rows = {row["reader_id"]: row for row in service_results.reader_table(task=task)}
    for reader in readers:
        assert reader.pseudonym in table
        assert reader.display_name not in page
        assert rows[reader.pk]["n_reads"] == 2
    # The admin's typed-in answer sits on the gold slice, so both measuring readers are scored against 16 mm.
    assert rows[readers[0].pk]["gold_mean_abs_error_mm"] == pytest.approx(0.5)
    assert rows[readers[1].pk]["gold_mean_abs_error_mm"] == pytest.approx(1.0)
    assert "0.5 mm" in table and "1.0 mm" in table
    assert "1 / 1" in table and "0 / 1" in table


@pytest.mark.django_db
def test_every_plot_renders_as_svg_even_before_any_consensus(researcher_client, study):
    task, _, _ = study
    empty_task = TaskFactory()

    for current in (task, empty_task):
        for name in console_results.PLOTS:
            response = researcher_client.get(reverse("console:task-plot", args=[current.id, name]))
            assert response.status_code == 200
            assert response["Content-Type"] == "image/svg+xml"
            assert response.content.lstrip().startswith(b"<?xml")
    assert researcher_client.get(f"/console/tasks/{task.id}/results/plots/nope.svg").status_code == 404


@pytest.mark.django_db
def test_the_bland_altman_plot_has_a_panel_per_reader_named_by_pseudonym(researcher_client, study):
    task, _, readers = study

    svg = researcher_client.get(reverse("console:task-plot", args=[task.id, "bland-altman"])).content.decode()

    for reader in readers:
        assert reader.pseudonym in svg
        assert reader.display_name not in svg


@pytest.mark.django_db
def test_plots_draw_the_services_points_without_computing_their_own(study):
    task, _, _ = study
    agreement = service_results.task_agreement(task=task)

    figure = console_results.draw_length_scatter(agreement)

    (points,) = figure.axes[0].collections[1:]
    drawn = sorted(map(tuple, points.get_offsets().tolist()))
    assert drawn == sorted((p["consensus_mm"], p["reader_mm"]) for p in agreement["length_scatter"])


@pytest.mark.django_db
def test_the_case_view_draws_each_read_and_the_consensus_over_the_slice(researcher_client, study):
    task, case, readers = study

    page = researcher_client.get(reverse("console:case", args=[task.id, case.id])).content.decode()

    assert page.count('class="reader long_axis"') == 9
    assert page.count('class="consensus long_axis"') == 3
    assert "/rendered?viewport=512,512" in page
    assert 'viewBox="-0.5 -0.5 64 64"' in page
    for reader in readers:
        assert reader.pseudonym in page and reader.display_name not in page


@pytest.mark.django_db
def test_the_export_controls_use_urls_of_the_export_api(researcher_client, study, django_capture_on_commit_callbacks):
    task, _, _ = study
    page = page_of(researcher_client, task)
    jobs_url = re.search(r'data-jobs-url="([^"]+)"', page).group(1)
    formats = re.findall(r'data-format="([^"]+)"', page)
    assert resolve(jobs_url).view_name == "exports:jobs"
    assert set(formats) == set(ExportJob.Format.values)
    assert 'id="pseudonymise"' not in page  # researchers cannot export identities

    # What exports.js does: POST the jobs URL, poll `${jobsUrl}${id}/`, follow download_url.
    with django_capture_on_commit_callbacks(execute=True):
        started = researcher_client.post(
            jobs_url, {"task": task.id, "format": "csv", "pseudonymise": True}, content_type="application/json"
        )
    assert started.status_code == 202
    job_url = f"{jobs_url}{started.json()['id']}/"
    assert resolve(job_url).view_name == "exports:job"
    job = researcher_client.get(job_url).json()
    assert job["status"] == "done"
    download = researcher_client.get(job["download_url"])
    assert download.status_code == 200 and download["Content-Type"] == "text/csv"

    listed = page_of(researcher_client, task).split('id="export-list"')[1].split("</ul>")[0]
    (link,) = re.findall(r'href="([^"]+)">download', listed)
    assert resolve(link).view_name == "exports:download"
    assert resolve(re.search(r'data-job-url="([^"]+)"', listed).group(1)).view_name == "exports:job"


@pytest.mark.django_db
def test_admins_get_the_pseudonymise_switch_and_see_every_export(client, study):
    task, _, _ = study
    other_researcher = researcher_user()
    ExportJob.objects.create(task=task, format="csv", requested_by=other_researcher, status="done")
    client.force_login(admin_user())

    page = page_of(client, task)

    assert 'id="pseudonymise"' in page
    assert page.split('id="export-list"')[1].count("<li") == 1


@pytest.mark.django_db
def test_an_adaptive_task_shows_each_case_s_read_target_and_why_it_needs_more_reads(researcher_client, small_ct_series):
    task = TaskFactory(reads_per_case=5, adaptive_reads=True, min_reads=2)
    case = CaseFactory(task=task, series=small_ct_series, label="Case 1")
    for length in (16.0, 22.0):
        add_read(case, ReaderFactory(), lesions=[{"long": horizontal_line(length_px=length)}])
    case.reads_done = 2
    case.save(update_fields=["reads_done"])
    consensus.recompute_task_consensus(task=task)

    page = page_of(researcher_client, task)

    assert "2 / 4" in page
    assert "needs 2 more reads: long axes disagree by 32%" in page


# --- questions ----------------------------------------------------------------------------


@pytest.fixture
def questioned_task(small_ct_series, tmp_path):
    """A gold case (answer key: liver, malignancy 4) read by four readers, one of them wrong on the site, and a
    second case whose readers split two against two on the site."""
    from annotations.questions.presets import lesion_site_question
    from annotations.questions.services import save_questions

    task = TaskFactory(reads_per_case=4)
    malignancy = {"key": "malignancy", "kind": "likert", "label": "Malignancy", "required": True,
                  "scale": {"min": 1, "max": 5}}  # fmt: skip
    question_set = save_questions(task=task, lesion=[lesion_site_question()], case=[malignancy])
    gold = CaseFactory(task=task, series=small_ct_series, label="Gold case", is_gold=True)
    other = write_series(small_patient("RB-TEST-011", seed=11), tmp_path / "split")
    import_paths(other.files, collection_name="Split")
    split = CaseFactory(task=task, series=Series.objects.get(series_instance_uid=other.series_instance_uid),
                        label="Split case")  # fmt: skip
    readers = [ReaderFactory() for _ in range(4)]

    def answers(site: str, malignancy_points: int) -> dict:
        return {"case": {"malignancy": malignancy_points}, "lesions": {"1": {"lesion_site": site}}}

    for reader, site, points in zip(readers, ["liver", "liver", "liver", "kidney"], [4, 4, 5, 2], strict=True):
        add_read(gold, reader, lesions=[{"long": horizontal_line()}], answers=answers(site, points),
                 question_set=question_set)  # fmt: skip
    add_read(gold, None, lesions=[{"long": horizontal_line()}], answers=answers("liver", 4), question_set=question_set)
    for reader, site in zip(readers, ["liver", "kidney", "liver", "kidney"], strict=True):
        add_read(split, reader, lesions=[{"long": horizontal_line()}], answers=answers(site, 3),
                 question_set=question_set)  # fmt: skip
    consensus.recompute_task_consensus(task=task)
    return task, readers


@pytest.mark.django_db
def test_the_page_shows_each_questions_agreement_confusion_accuracy_and_low_agreement_cases(
    researcher_client, questioned_task
):
    task, readers = questioned_task

    page = page_of(researcher_client, task)
    results = console_results.question_results(task=task)

    assert 'id="questions"' in page and page.count('data-testid="question-result"') == 2
    site = next(q for q in results["questions"] if q["key"] == "lesion_site")
    # Alpha is the service's figure, shown as is.
    expected = next(row for row in answer_results.question_agreement_of_task(task=task) if row["key"] == "lesion_site")
    assert site["agreement"]["alpha"] == expected["alpha"] and expected["alpha"] is not None
    assert f"{expected['alpha']:.2f}" in page
    # Confusion against the key: three readers said liver, one kidney, on a liver lesion.
    rows = {row["label"]: row["counts"] for row in site["confusion"]["rows"]}
    liver, kidney = site["confusion"]["columns"].index("Liver"), site["confusion"]["columns"].index("Kidney")
    assert rows["Liver"][liver] == 3 and rows["Liver"][kidney] == 1
    assert 'data-testid="confusion"' in page
    accuracy = {row["pseudonym"]: row["accuracy"] for row in site["readers"]}
    assert accuracy == {readers[0].pseudonym: 1.0, readers[1].pseudonym: 1.0, readers[2].pseudonym: 1.0,
                        readers[3].pseudonym: 0.0}  # fmt: skip
    assert readers[3].pseudonym in page and readers[3].display_name not in page
    # The split case is listed for its tied site answers.
    flagged = results["low_agreement_answer_cases"]
    assert [case["label"] for case in flagged] == ["Split case"]
    assert "lesion_site: answers tie between kidney, liver" in " ".join(flagged[0]["flags"])
    assert "Split case" in page.split('data-testid="answer-low-agreement"')[1]


@pytest.mark.django_db
def test_each_question_has_a_distribution_plot_in_its_own_order(researcher_client, questioned_task):
    task, _ = questioned_task

    response = researcher_client.get(reverse("console:task-plot", args=[task.id, "question-lesion-lesion_site"]))
    likert = researcher_client.get(reverse("console:task-plot", args=[task.id, "question-case-malignancy"]))
    missing = researcher_client.get(reverse("console:task-plot", args=[task.id, "question-case-nothing"]))

    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    svg = response.content.decode()
    assert "Lesion site" in svg and "Liver" in svg and "Kidney" in svg
    assert likert.status_code == 200 and "Malignancy" in likert.content.decode()
    assert missing.status_code == 404


@pytest.mark.django_db
def test_readers_cannot_see_question_results(client, questioned_task):
    task, readers = questioned_task
    client.force_login(readers[0].user)

    response = client.get(reverse("console:task-plot", args=[task.id, "question-lesion-lesion_site"]))

    assert response.status_code in (302, 403)


@pytest.mark.django_db
def test_questions_show_before_any_answer_with_empty_plots(researcher_client, small_ct_series):
    from annotations.questions.presets import lesion_type_question
    from annotations.questions.services import save_questions

    task = TaskFactory()
    CaseFactory(task=task, series=small_ct_series)
    save_questions(task=task, lesion=[lesion_type_question()], case=[])

    page = page_of(researcher_client, task)
    plot = researcher_client.get(reverse("console:task-plot", args=[task.id, "question-lesion-lesion_type"]))

    assert page.count('data-testid="question-result"') == 1 and "No case has low agreement on an answer" in page
    assert "Reader accuracy appears once gold cases have answer keys" in page
    assert plot.status_code == 200 and "No answers yet" in plot.content.decode()


@pytest.mark.django_db
def test_the_page_shows_how_much_readers_edit_mask_proposals(researcher_client, study):
    from annotations.models import MaskProvenance, MaskSlice

    task, measured, readers = study
    reads = list(measured.reads.order_by("id"))
    lesion_slice = instances(measured.series)[4]
    for read, lesion in [(reads[0], 1), (reads[1], 1), (reads[1], 2), (reads[2], 1)]:
        MaskSlice.objects.create(
            read=read, lesion_index=lesion, instance=lesion_slice, frame=1, counts=[100, 4, 3992], pixel_count=4
        )
    for read, lesion, source, edited, dice in [
        (reads[0], 1, "line", True, 0.8),
        (reads[1], 1, "tap", False, 1.0),
        (reads[1], 2, "line", True, 0.9),
    ]:
        MaskProvenance.objects.create(
            read=read, lesion_index=lesion, source=source, algorithm="rw", edited=edited, edit_dice=dice
        )

    html = page_of(researcher_client, task)

    section = html[html.index('id="mask-proposals"') : html.index('id="low-agreement"')]
    assert "3 of 4 lesion mask(s)" in section and "2 from a line, 1 from a tap, 1 by hand" in section
    assert "<strong>0.75</strong>" in section  # share proposed
    assert "<strong>0.90</strong>" in section  # median Dice of 0.8, 0.9, 1.0
    assert "<strong>0.67</strong>" in section  # two of three proposals edited


@pytest.mark.django_db
def test_the_page_shows_a_models_lines_lesion_by_lesion_against_the_computed_consensus(researcher_client, study):
    from annotations.models import ModelPrediction

    task, measured, _ = study
    middle = instances(measured.series)[4].sop_instance_uid

    def line(center, length):
        _, start, end = horizontal_line(center=center, length_px=length)
        return {"sop_instance_uid": middle, "frame": 1, "long_axis": {"start": list(start), "end": list(end)}}

    # Consensus lengths are the readers' medians (16, 9, 6 mm); the model finds two (2 and 1 mm too long),
    # misses the third and marks a spot no reader marked.
    ModelPrediction.objects.create(
        case=measured,
        model_name="line-net",
        lesion_marks=[
            {"lesion": 1, **line(SPOTS[0], 18.0)},
            {"lesion": 2, **line(SPOTS[1], 10.0)},
            {"lesion": 3, **line((50.0, 55.0), 6.0)},
        ],
    )

    page = page_of(researcher_client, task)

    summary = page[page.index('data-testid="model-summary"') : page.index('data-testid="model-cases"')]
    assert "line-net" in summary and "0.67 (2 / 3)" in summary  # sensitivity (found / consensus lesions)
    assert "<td>1.00</td>" in summary and "1.5 (1.5)" in summary  # false positives per case; axis error, mm
    assert "Long-axis error</b>: the model's long axis minus the reference's" in page
