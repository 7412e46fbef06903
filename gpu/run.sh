#!/usr/bin/env bash
# The GPU window (issue 18): measure the zoo on one GPU within a deadline, on a bare machine with no network.
#
#   bash gpu/run.sh [--out DIR] [segbench gpu options]    (DIR default: build/gpu-window; `nox -s gpu` runs this)
#   bash gpu/run.sh --plan                                 (the cells, estimates and budget; needs no GPU)
#
# It installs what the machine lacks from gpu/wheels (gpu/install.sh), runs SegBench from this working tree
# (on PYTHONPATH, so nothing is installed into the machine's Python), keeps the whole output in DIR/window.log,
# and at the end fits DIR within 8 files of at most 16 MiB (python -m bench.pack). The deadline counts from
# the start of this script. PYTHON names the interpreter (default python3); SEGBENCH_SITE where the wheels go;
# SEGBENCH_GIT_COMMIT the commit of a copy of the tree that has no .git.
set -uo pipefail
export SEGBENCH_WINDOW_T0=${SEGBENCH_WINDOW_T0:-$(date +%s.%N)}
export PYTHONUNBUFFERED=1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
export PYTHON=${PYTHON:-python3}
SITE=${SEGBENCH_SITE:-${TMPDIR:-/tmp}/segbench-site}

OUT=build/gpu-window PLAN=0 HAS_OUT=0
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
        --out) OUT=${args[$((i + 1))]:-} HAS_OUT=1 ;;
        --out=*) OUT=${args[$i]#--out=} HAS_OUT=1 ;;
        --plan) PLAN=1 ;;
    esac
done
[[ $HAS_OUT == 1 || $PLAN == 1 ]] || args+=(--out "$OUT")

cd "$REPO" || exit 2
if [[ $PLAN == 1 ]]; then
    PYTHONPATH=$(bash "$HERE/install.sh" "$SITE") || exit 3
    PYTHONPATH="$REPO:$PYTHONPATH" exec "$PYTHON" -m bench gpu "${args[@]}"
fi

mkdir -p "$OUT" || exit 2
LOG="$OUT/window.log"
(
    echo "gpu/run.sh: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $("$PYTHON" --version 2>&1) at $(command -v "$PYTHON")"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 || true
    site=$(bash "$HERE/install.sh" "$SITE") || exit 3
    export PYTHONPATH="$REPO:$site"
    exec "$PYTHON" -m bench gpu "${args[@]}"
) 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
if ! PYTHONPATH="$REPO" "$PYTHON" -m bench.pack "$OUT" && [[ $status == 0 ]]; then status=1; fi
echo "gpu/run.sh: exit $status; files in $OUT:" >&2
find "$OUT" -type f -printf '  %P %s bytes\n' >&2
exit "$status"
