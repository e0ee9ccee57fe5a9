<<<<<<< HEAD
"""Pure numeric cores: geometry, RECIST, lesion matching, line consensus, STAPLE, agreement, the adaptive-reads
rule, answer and case consensus, longitudinal maths and mask run lengths. Arrays and dataclasses in, dataclasses
out: nothing here imports Django or any other part of the project, so it is tested without a database and reused
by benchmarks.
"""
=======
"""Pure numeric cores: no Django, no other part of the project."""
>>>>>>> issue-26-core
