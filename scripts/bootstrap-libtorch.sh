#!/usr/bin/env bash
# Creates (once) a project-local Python virtual environment holding exactly the libtorch that
# tch 0.26 links against, and prints the environment cargo needs. Idempotent: when the venv already
# holds torch 2.13.0 it returns in well under a second without touching the network.
#
#   eval "$(scripts/bootstrap-libtorch.sh)"     # exports LIBTORCH and LIBTORCH_CXX11_ABI
set -euo pipefail

TORCH_VERSION="2.13.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${COUNTERSIGN_VENV:-$root/.venv}"
stamp="$venv/.torch-$TORCH_VERSION"

python="$(command -v python3 || command -v python || true)"
if [ -z "$python" ]; then
  echo "bootstrap-libtorch: Python 3 is required to fetch libtorch from PyPI; install python3 and retry." >&2
  exit 1
fi

if [ ! -f "$stamp" ]; then
  echo "bootstrap-libtorch: installing torch==$TORCH_VERSION into $venv (one time, about 5 GB)..." >&2
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" >&2
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "torch==$TORCH_VERSION" >&2
  touch "$stamp"
fi

torch_dir="$("$venv/bin/python" - <<'PY'
import pathlib, sysconfig
print(pathlib.Path(sysconfig.get_paths()["purelib"]) / "torch")
PY
)"
if [ ! -f "$torch_dir/lib/libtorch_cpu.so" ]; then
  echo "bootstrap-libtorch: $torch_dir has no lib/libtorch_cpu.so; delete $venv and rerun." >&2
  exit 1
fi
echo "export LIBTORCH='$torch_dir'"
echo "export LIBTORCH_CXX11_ABI=1"
