#!/usr/bin/env bash
# Check Readerboard's training-dataset exports with the frameworks' own code: nnU-Net v2's
# verify_dataset_integrity and MONAI's load_decathlon_datalist + LoadImaged. They need torch and more,
# which must stay out of the project's lock, so they live in a throw-away venv (built once, reused):
# nnunetv2 and monai without their dependency lists, plus only what the two checks import (CPU torch,
# SimpleITK, nibabel, pandas, scikit-image, batchgenerators, acvl-utils, blosc2).
#
#   scripts/check-nnunet-export.sh                       build the venv, export a demo-like task, check it
#   scripts/check-nnunet-export.sh --venv-only           build the venv only (CI's services step)
#   scripts/check-nnunet-export.sh nnunet|monai EXPORT.zip [...]   check exports made with manage.py export
#
# READERBOARD_DATASET_CHECK_VENV says where the venv goes (default /tmp/readerboard-dataset-check); the
# `datasettools` tests find it there and are skipped without it (they fail in CI). PYTHON is the project's
# interpreter that makes the exports (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${READERBOARD_DATASET_CHECK_VENV:-/tmp/readerboard-dataset-check}"

if ! "$venv/bin/python" -c "import nnunetv2, monai, torch, SimpleITK, blosc2, skimage" 2>/dev/null; then
  echo "== building the dataset-check venv in $venv (CPU torch, nnunetv2, monai) =="
  python3 -m venv --clear "$venv"
  pip=("$venv/bin/pip" install -q --disable-pip-version-check)
  "${pip[@]}" torch==2.13.0
  "${pip[@]}" numpy pandas "nibabel>=5.2,<6" SimpleITK tifffile scikit-image tqdm blosc2
  # Their own dependency lists pull in training-only packages (dynamic_network_architectures, seaborn,
  # graphviz, ...) that the checks never import.
  "${pip[@]}" --no-deps nnunetv2==2.8.1 monai==1.6.1 batchgenerators==0.25.5 acvl-utils==0.2.6
fi

case "${1:-}" in
  --venv-only)
    exit 0
    ;;
  nnunet | monai)
    exec "$venv/bin/python" scripts/check_dataset_export.py "$@"
    ;;
  "")
    READERBOARD_DATASET_CHECK_VENV="$venv" "${PYTHON:-.venv/bin/python}" -m pytest -m datasettools -p no:randomly \
      tests/annotations/exports/test_dataset_tools.py
    ;;
  *)
    echo "usage: $0 [--venv-only | nnunet|monai EXPORT.zip [nnunet|monai EXPORT.zip ...]]" >&2
    exit 2
    ;;
esac
