#!/usr/bin/env bash
# The environment of the course report's CPU-only columns (docs/performance.md): PyTorch's CPU-only build, the kind
# Binder installs, with the course's runtime packages and the runner's. Usage: bash scripts/cpu_build_env.sh [VENV]
#
# Where PyTorch's CPU wheel index answers, this is one line, and nothing below is needed:
#   pip install --extra-index-url https://download.pytorch.org/whl/cpu -e ".[lab,test]"
# The package registry of the course's CI machine has torch==2.13.0+cpu but no CPU build of torchvision, and the
# CUDA build of torchvision 0.28 (the release for torch 2.13) fails to import beside it. So torchvision 0.28.0 is
# installed without its compiled operators (they need the CUDA build) and without their registration; the course
# uses only torchvision.utils.make_grid, which is plain Python.
set -euo pipefail
VENV=${1:-.venv-cpu}
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "torch==2.13.0+cpu"
# The course's other dependencies (pyproject.toml) and the runner's, then course_utils and torchvision without theirs.
"$VENV/bin/pip" install --quiet numpy "matplotlib>=3.6" "tqdm>=4.60" "scikit-learn>=1.1" "pandas>=1.3" \
    "jupyterlab>=4" ipykernel "ipywidgets>=8" "nbclient>=0.7" "nbformat>=5" psutil
"$VENV/bin/pip" install --quiet --no-deps -e . "torchvision==0.28.0"
site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
rm -f "$site"/torchvision/_C.so "$site"/torchvision/image.so
sed -i 's|^@torch.library.register_fake("torchvision::\(q\?nms\)")|@(torch.library.register_fake("torchvision::\1") if torchvision.extension._has_ops() else (lambda fn: fn))|' \
    "$site/torchvision/_meta_registrations.py"
"$VENV/bin/python" -c "import torch, torchvision.utils; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
