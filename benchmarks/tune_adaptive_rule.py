"""Choose the adaptive-reads thresholds: replay a fixed-7 reader study case by case under a grid of rules.

Run: .venv/bin/python benchmarks/tune_adaptive_rule.py [--seed 23] [--lesions 150] [--cache PATH | --from-cache PATH]

It runs one fixed task of 7 reads per case through the real services (as
bench_label_quality.py does), then, for every case, computes the pure consensus
(`case_consensus.compute_case`) of the first k reads in the order they arrived,
k = 1..7, and keeps each prefix's lesions (support, reader long axes by reader,
mask overlap) and its matches to the truth (`--cache` writes them, `--from-cache`
replays them without the database). A rule is replayed on those prefixes: start
at min_reads, ask `read_decision`, add the reads it wants, until it is settled or
at 7. With `reliability`, the rule weighs each reader by the reliability the task
learned without gold (`refresh_reader_quality` at the end of the fixed-7 task: a
little better informed than during a real adaptive task, where the weights grow
with the reads). It prints, per rule, the mean reads per case, the mean absolute
long-axis error of the consensus length against the truth, unweighted and with
the same reader weights, sensitivity and false positives per case, next to fixed
2 to 7. Use a different seed from the one reported by the benchmark.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import pickle
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from annotations.core.adaptive_reads import AdaptiveRule, CaseEvidence, LesionEvidence, read_decision  # noqa: E402
from annotations.core.line_consensus import weighted_quantile  # noqa: E402
from benchmarks import bench_label_quality as bench  # noqa: E402
from benchmarks import reader_study as study  # noqa: E402

MAX_READS = 7


def study_prefixes(seed: int, lesions: int) -> dict:
    """Run the fixed-7 study and return each case prefix's consensus lesions, matches, and the readers' weights."""
    cases = study.make_cases(seed, min_lesions=lesions)
    profiles = study.reader_population(seed)
    with tempfile.TemporaryDirectory(prefix="rb-tune-19-") as tmp:
        bench.setup_django(Path(tmp) / "tune.sqlite3")
        from annotations.consensus import case_consensus as consensus
        from annotations.core.case_consensus import ConsensusParams, compute_case
        from annotations.core.lesion_matching import match_points
        from annotations.models import Case, Read, ReaderQuality

        readers = bench.make_readers(profiles)
        series = bench.build_series(cases)
        task, _ = bench.run_task(
            name="fixed 7",
            cases=cases,
            series=series,
            readers=readers,
            profiles=profiles,
            seed=seed,
            reads_per_case=MAX_READS,
            min_reads=None,
        )
        rows = list(Case.objects.filter(task=task).order_by("pk"))
        inputs = consensus.load_case_inputs([row.pk for row in rows])
        params = ConsensusParams.for_task(task)
        arrival: dict[int, list[int]] = {}
        for case_id, reader_id in (
            Read.objects.filter(case__task=task).order_by("submitted_at", "pk").values_list("case_id", "reader_id")
        ):
            arrival.setdefault(case_id, []).append(reader_id)
        prefixes = {}
        for row, case in zip(rows, cases, strict=True):
            by_reader = {read.reader_id: read for read in inputs[row.pk].reads}
            ordered = [by_reader[reader_id] for reader_id in arrival[row.pk] if reader_id in by_reader]
            for k in range(1, len(ordered) + 1):
                outcome = compute_case(dataclasses.replace(inputs[row.pk], reads=ordered[:k]), params)
                accepted = [lesion for lesion in outcome.lesions if lesion.accepted and lesion.long_axis_median_mm]
                matches = match_points(
                    [lesion.anchor_mm for lesion in accepted],
                    [lesion.long_axis_median_mm for lesion in accepted],
                    [truth.centre_mm for truth in case.lesions],
                    [truth.long_axis_mm for truth in case.lesions],
                    slice_spacing_mm=study.SLICE_MM,
                )

                def lengths(lesion) -> dict[int, float]:
                    return {int(r): v for r, v in (lesion.statistics.get("reader_long_axis_mm") or {}).items()}

                prefixes[(row.pk, k)] = {
                    "lesions": [
                        (lesion.support, lengths(lesion), lesion.statistics.get("mean_pairwise_dice"))
                        for lesion in outcome.lesions
                    ],
                    "matched": [(lengths(accepted[m.left]), case.lesions[m.right].long_axis_mm) for m in matches],
                    "found": len(matches),
                    "false_positives": len(accepted) - len(matches),
                    "total": len(case.lesions),
                }
        weights = {q.reader_id: q.weight for q in ReaderQuality.objects.filter(task=task)}
        return {"seed": seed, "cases": [row.pk for row in rows], "prefixes": prefixes, "weights": weights}


def evidence(prefix: dict, k: int, weights: dict[int, float] | None) -> CaseEvidence:
    return CaseEvidence(
        n_readers=k,
        lesions=[
            LesionEvidence(
                support=support,
                long_axes_mm=list(lengths.values()),
                mean_pairwise_dice=dice,
                reader_weights=[weights.get(r, 1.0) for r in lengths] if weights else (),
            )
            for support, lengths, dice in prefix["lesions"]
        ],
    )


def replay(study_data: dict, rule: AdaptiveRule, *, reliability: bool) -> dict:
    """Return reads per case, long-axis error (unweighted and weighted consensus), sensitivity, FP per case."""
    prefixes, weights = study_data["prefixes"], study_data["weights"]
    reads, plain, weighted, found, false_positives, total = 0, [], [], 0, 0, 0
    for case_id in study_data["cases"]:
        k = rule.min_reads
        while k < rule.max_reads:
            decision = read_decision(evidence(prefixes[(case_id, k)], k, weights if reliability else None), rule)
            if not decision.more_reads:
                break
            k = min(rule.max_reads, k + decision.more_reads)
        prefix = prefixes[(case_id, k)]
        for lengths, truth in prefix["matched"]:
            values = list(lengths.values())
            plain.append(abs(weighted_quantile(values, 0.5) - truth))
            weighted.append(abs(weighted_quantile(values, 0.5, [weights.get(r, 1.0) for r in lengths]) - truth))
        reads, found = reads + k, found + prefix["found"]
        false_positives, total = false_positives + prefix["false_positives"], total + prefix["total"]
    n = len(study_data["cases"])
    return {
        "reads_per_case": reads / n,
        "error_mm": float(np.mean(plain)),
        "weighted_error_mm": float(np.mean(weighted)),
        "sensitivity": found / total,
        "false_positives_per_case": false_positives / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--lesions", type=int, default=150)
    parser.add_argument("--cache", help="write the study's prefixes here (pickle) for --from-cache")
    parser.add_argument("--from-cache", help="replay the prefixes written by --cache instead of running the study")
    args = parser.parse_args()
    if args.from_cache:
        with open(args.from_cache, "rb") as source:
            study_data = pickle.load(source)  # noqa: S301 (our own file)
    else:
        study_data = study_prefixes(args.seed, args.lesions)
        if args.cache:
            with open(args.cache, "wb") as out:
                pickle.dump(study_data, out)
    print(f"seed {study_data['seed']}: {len(study_data['cases'])} cases")
    print("rule                                            reads/case  LA error  weighted  sensitivity  FP/case")

    def show(label: str, result: dict) -> None:
        print(f"{label:48s}", "  ".join(f"{v:9.3f}" for v in result.values()), flush=True)

    for k in range(2, MAX_READS + 1):
        show(f"fixed {k}", replay(study_data, AdaptiveRule(min_reads=k, max_reads=k), reliability=False))
    for minimum, error, floor_mm, margin, reliability in itertools.product(
        (2, 3), (0.02, 0.03, 0.05, 0.07), (0.5, 1.0, 1.5, 2.0), (1, 2), (False, True)
    ):
        rule = AdaptiveRule(
            min_reads=minimum,
            max_reads=MAX_READS,
            max_median_error=error,
            min_median_error_mm=floor_mm,
            detection_margin=margin,
        )
        label = f"min {minimum} error {error:.0%} / {floor_mm} mm margin {margin}" + (" reliab." if reliability else "")
        show(label, replay(study_data, rule, reliability=reliability))


if __name__ == "__main__":
    main()
