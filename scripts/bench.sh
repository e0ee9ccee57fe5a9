#!/usr/bin/env bash
# Every benchmark, each side by side with its peer in one run; JSON results land in benchmarks/results/.
# Takes about 20 minutes on 2 cores. Needs Debian's orthanc + orthanc-dicomweb for the DICOMweb row.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh test,dev
py=.venv/bin/python
$py benchmarks/bench_staple.py
$py benchmarks/bench_dicomweb.py
$py benchmarks/bench_consensus.py
$py benchmarks/bench_export.py
if [ -f benchmarks/load/run_load.py ]; then $py benchmarks/load/run_load.py; fi
