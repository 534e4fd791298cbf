# Shared by scripts/*: create .venv and install pullman into it (idempotent).
VENV="${PULLMAN_VENV:-$here/.venv}"
ensure_venv() {
  local extras="${1:-}"
  local stamp="$VENV/.pullman-installed${extras:+-$extras}"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    python3 -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing pullman${extras:+ [$extras]} into $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".${extras:+[$extras]}"
    touch "$stamp"
  fi
  # An editable install runs pullman from its sources: compile them once, as pip does for an
  # installed package (with PYTHONDONTWRITEBYTECODE set, every run would compile ~100 modules
  # again, about 0.15 s of each command's start). Only files that changed are compiled.
  "$VENV/bin/python" -m compileall -q "$here/pullman" >/dev/null || true
}
