#!/usr/bin/env bash
# Install what a bare GPU machine lacks for SegBench, with no network: the pure-Python wheels in
# gpu/wheels/ (fvcore and the dependencies of it that the machine's image does not have), checked against
# gpu/wheels/SHA256SUMS, into SITE (a folder to put on PYTHONPATH; nothing goes into the machine's Python).
#
#   bash gpu/install.sh SITE [--force]      (PYTHON names the interpreter; default python3)
#
# Without --force it installs only when PYTHON cannot import one of them. Prints the PYTHONPATH to use.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${PYTHON:-python3}
SITE=${1:?usage: install.sh SITE [--force]}
FORCE=${2:-}
MODULES="fvcore iopath yacs termcolor"
PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH

missing=$("$PYTHON" -c 'import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))' $MODULES)
if [[ -n "$missing" || "$FORCE" == "--force" ]]; then
    echo "install: ${missing:-(forced)} from gpu/wheels into $SITE" >&2
    (cd "$HERE/wheels" && sha256sum --check --quiet SHA256SUMS) || { echo "install: a wheel does not match gpu/wheels/SHA256SUMS" >&2; exit 3; }
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
        --upgrade --target "$SITE" "$HERE"/wheels/*.whl
fi
"$PYTHON" -c "import fvcore.common.config, iopath.common.file_io, termcolor, tabulate" || { echo "install: fvcore or a dependency cannot be imported" >&2; exit 3; }
echo "$PYTHONPATH"
