# Shared by scripts/serve and scripts/test: make .venv and install the project into it, once.
# The install is skipped when pyproject.toml and the extras asked for are unchanged since the last
# one, so a second start takes a moment, not a minute.

ensure_venv() {
  local extras="$1"
  local python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "threadlab needs Python 3.11 or newer (found: $("$python" --version 2>&1))" >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv ..."
    "$python" -m venv .venv
  fi
  local stamp=".venv/.threadlab-install"
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1) [$extras]"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "Installing threadlab[$extras] into .venv ..."
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[$extras]"
    echo "$want" > "$stamp"
  fi
}
