"""Lesion mask proposals for readers: a reader's line, tap or corrected slice in, run-length mask slices out.

`services.propose_mask` decides who may ask (a lease on the case or an earlier read of it), checks the prompt
against the case's series, loads only the pixels the proposal can reach (in HU) and calls the pure core
(annotations.core.segmentation) under a time budget. `provenance` says how a submitted mask was made
(by hand, or proposed and then perhaps edited) and how much the reader changed the proposal.
"""
