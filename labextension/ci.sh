#!/usr/bin/env bash
# Build, test and install the JupyterLab extension, as CI does (.ci/run calls this).
# Needs Node 20.19+ with npm, and PyPI + the npm registry. Usage: labextension/ci.sh [VENV]
# (default: the repository's .venv). The wheel is left in labextension/dist/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$(cd "${1:-$here/../.venv}" && pwd)"
cd "$here"
export PATH="$venv/bin:$PATH" # jlpm and jupyter-builder come from the venv

step() { printf '\n== labextension: %s\n' "$*"; }

step "jlpm (from jupyter-builder)"
"$venv/bin/python" -m pip install --quiet "jupyter-builder>=1.2,<2"

step "jlpm install (yarn.lock must be up to date: no changes allowed)"
jlpm install --immutable

step "build (production)"
jlpm build:prod

step "the build holds every plugin (the Run as HF Job command, the HF Jobs panel, the card renderer)"
for id in hfjobs-magic-lab:plugin hfjobs-magic-lab:panel hfjobs-magic-lab:renderer hfjobs-panel; do
  grep -rqF -- "$id" hfjobs_magic_lab/labextension/static || { echo "$id is not in the built extension" >&2; exit 1; }
done

step "Jest"
set +e
jlpm test --json --outputFile=jest-results.json
jest_status=$?
set -e
# CI reads only known runners' closing lines: say Jest's result in the plain form it counts.
node -e 'const r = require("./jest-results.json");
  console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed`);'
rm -f jest-results.json
[ "$jest_status" -eq 0 ] || { echo "Jest failed" >&2; exit 1; }

step "wheel"
rm -rf dist
"$venv/bin/python" -m pip wheel --quiet --no-deps --wheel-dir dist .

step "install the wheel into $venv"
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps dist/hfjobs_magic_lab-*.whl

step "jupyter labextension list"
listing="$("$venv/bin/jupyter" labextension list 2>&1 | sed "s/\x1b\[[0-9;]*m//g")" # without colours
echo "$listing"
if ! grep -Eq 'hfjobs-magic-lab v[0-9.]+ enabled.*OK' <<<"$listing"; then
  echo "hfjobs-magic-lab is not listed as enabled and OK" >&2
  exit 1
fi
