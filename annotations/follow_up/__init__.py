"""Follow-up time points: a patient's studies ordered in time, follow-up cases and their frozen baselines."""
