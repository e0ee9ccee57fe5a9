#!/usr/bin/env bash
# Every benchmark, each side by side with its peer in one run; JSON results land in benchmarks/results/.
# Takes about 35 minutes on 2 cores. The DICOMweb row needs Debian's orthanc + orthanc-dicomweb (the peer)
# and wrk (the load generator of warm rows); they are installed here when apt-get can.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v Orthanc >/dev/null || need+=(orthanc orthanc-dicomweb)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" || echo "could not install ${need[*]}" >&2
fi
bash scripts/venv.sh test,dev
py=.venv/bin/python
$py benchmarks/bench_staple.py
$py benchmarks/bench_dicomweb.py
$py benchmarks/bench_reading.py
$py benchmarks/bench_consensus.py
$py benchmarks/bench_export.py
$py benchmarks/bench_label_quality.py
$py benchmarks/bench_segmentation.py
if [ -f benchmarks/load/run_load.py ]; then $py benchmarks/load/run_load.py; fi
