# Sourced by ./oisp-sensor and ./test: make sure .venv exists with this checkout installed.
# Usage: . scripts/venv.sh [extras]    (extras e.g. "test"); re-installs when pyproject.toml changes.
set -eu
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
extras="${1:-}"
stamp="$venv/.installed-${extras:-base}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "oisp-sensor needs Python >= 3.11 (found: $("$python" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "setting up $venv (first run only)..." >&2
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
fi
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  spec="$root"
  [ -n "$extras" ] && spec="$root[$extras]"
  echo "installing oisp-sensor${extras:+ with [$extras]} into .venv..." >&2
  "$venv/bin/python" -m pip install --quiet -e "$spec" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "$venv/bin/python" -c "import oisp_sensor" || { echo "installation failed" >&2; exit 1; }
  touch "$stamp"
fi
