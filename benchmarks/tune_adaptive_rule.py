"""Choose the adaptive-reads thresholds: replay a fixed-7 reader study case by case under a grid of rules.

Run: .venv/bin/python benchmarks/tune_adaptive_rule.py [--seed 23] [--lesions 150]

It runs one fixed task of 7 reads per case through the real services (as
bench_label_quality.py does), then, for every case, computes the pure consensus
(`case_consensus.compute_case`) of the first k reads in the order they arrived,
k = 1..7. A rule is replayed on those prefixes: start at min_reads, ask
`read_decision`, add the reads it wants, until it is settled or at 7. It prints,
per rule, the mean reads per case, the mean absolute long-axis error of the
median against the truth, sensitivity and false positives per case, next to
fixed 3, 5 and 7. Use a different seed from the one reported by the benchmark.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks import bench_label_quality as bench  # noqa: E402
from benchmarks import reader_study as study  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--lesions", type=int, default=150)
    args = parser.parse_args()
    cases = study.make_cases(args.seed, min_lesions=args.lesions)
    profiles = study.reader_population(args.seed)
    with tempfile.TemporaryDirectory(prefix="rb-tune-19-") as tmp:
        bench.setup_django(Path(tmp) / "tune.sqlite3")
        from annotations.models import Case, Read
        from annotations.services import consensus
        from annotations.services.adaptive_reads import AdaptiveRule, read_decision
        from annotations.services.case_consensus import ConsensusParams, case_evidence, compute_case
        from annotations.services.lesion_matching import match_points

        readers = bench.make_readers(profiles)
        series = bench.build_series(cases)
        task, _ = bench.run_task(
            name="fixed 7",
            cases=cases,
            series=series,
            readers=readers,
            profiles=profiles,
            seed=args.seed,
            reads_per_case=7,
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
                errors = [
                    abs(accepted[m.left].long_axis_median_mm - case.lesions[m.right].long_axis_mm) for m in matches
                ]
                prefixes[(row.pk, k)] = (
                    case_evidence(outcome.lesions, n_readers=k),
                    errors,
                    len(matches),
                    len(accepted) - len(matches),
                    len(case.lesions),
                )

        def replay(rule: AdaptiveRule) -> tuple[float, float, float, float]:
            reads, errors, found, false_positives, total = 0, [], 0, 0, 0
            for row in rows:
                k = rule.min_reads
                while k < 7:
                    decision = read_decision(prefixes[(row.pk, k)][0], rule)
                    if not decision.more_reads:
                        break
                    k = min(7, k + decision.more_reads)
                _, e, f, p, t = prefixes[(row.pk, k)]
                reads, found, false_positives, total = reads + k, found + f, false_positives + p, total + t
                errors += e
            return reads / len(rows), float(np.mean(errors)), found / total, false_positives / len(rows)

        print("rule                                   reads/case  LA error  sensitivity  FP/case")
        for k in (3, 5, 7):
            print(f"fixed {k:<33d}", "  ".join(f"{v:9.3f}" for v in replay(AdaptiveRule(min_reads=k, max_reads=k))))
        for minimum, error, floor_mm, margin in itertools.product(
            (2, 3), (0.03, 0.05, 0.07, 0.1), (0.5, 1.0, 1.5, 2.0), (1, 2)
        ):
            rule = AdaptiveRule(
                min_reads=minimum,
                max_reads=7,
                max_median_error=error,
                min_median_error_mm=floor_mm,
                detection_margin=margin,
            )
            label = f"min {minimum} error {error:.0%} / {floor_mm} mm margin {margin}"
            print(f"{label:39s}", "  ".join(f"{v:9.3f}" for v in replay(rule)), flush=True)


if __name__ == "__main__":
    main()
