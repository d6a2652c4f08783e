# Sourced by scripts/test and scripts/demo: make sure .venv exists and holds the project with its dev extras.
# Reinstalls only when pyproject.toml (or the Python) changed since the last install; the hash of both is
# kept in .venv/.trygg-installed. Set PYTHON to use another interpreter than python3.

trygg_venv() {
    local python="${PYTHON:-python3}"
    local stamp=".venv/.trygg-installed"
    if [ ! -x .venv/bin/python ]; then
        echo "scripts: creating .venv with $python" >&2
        "$python" -m venv .venv
    fi
    local want
    want="$( { sha256sum pyproject.toml; .venv/bin/python -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x .venv/bin/trygg ]; then
        echo "scripts: installing the project into .venv (pip install -e '.[dev]')" >&2
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
        echo "$want" > "$stamp"
    fi
}
