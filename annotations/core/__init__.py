"""Pure numeric cores: geometry, RECIST, lesion matching, line consensus, STAPLE, agreement, the adaptive-reads
rule, answer and case consensus, longitudinal maths, mask run lengths and lesion mask proposals (segmentation).
Arrays and dataclasses in, dataclasses out: nothing here imports Django or any other part of the project, so it is
tested without a database and reused by benchmarks.
"""
