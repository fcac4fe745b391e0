#!/usr/bin/env bash
# The GPU kit in one command (issue #29), run from the repository root on the GPU machine:
#   device tool: run(command="bash benchmarks/gpu/run.sh", carry=[".gpukit"], timeout_s=600)
# Installs the carried wheels into a folder on PYTHONPATH, then runs benchmarks/gpu/kit.py, which writes its
# summaries and the run folder into $OUT (or $WEEYUGA_GPU_OUT).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ls .gpukit/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/weeyuga-site .gpukit/*.whl
  export PYTHONPATH="/tmp/weeyuga-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
exec timeout 560 python3 benchmarks/gpu/kit.py "$@"
