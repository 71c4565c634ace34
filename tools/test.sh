#!/usr/bin/env bash
# The whole test suite: notebooks (nbdev-test), export/clean checks, docs site in a browser.
# Prints a closing line "N passed, N failed" (N = notebooks), since nbdev-test prints no count.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PATH="$PWD/$BIN:$PATH" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
# nbdev-test runs each notebook in a thread, and glibc gives a thread other than the main one malloc heaps of at most
# 64 MB, where `tune_malloc` cannot keep the larger tensors of training: one heap for all threads (~1/3 off a training).
export MALLOC_ARENA_MAX=1
failed=0
# Everything the tests put in temporary directories goes in one, removed at the end: a notebook run by nbdev-test's
# worker process never runs its `atexit` clean-ups, and repeated runs would fill /tmp.
TMPDIR=$(mktemp -d); export TMPDIR; trap 'rm -rf "$TMPDIR"' EXIT
fail() { echo "FAILED: $*"; failed=1; }

# 1. The package is in sync with the notebooks, and the notebooks are clean.
before=$(git status --porcelain | md5sum)
nbdev-export || fail "nbdev-export"
nbdev-clean || fail "nbdev-clean"
after=$(git status --porcelain | md5sum)
if [[ $before != "$after" ]]; then git status --porcelain; fail "nbdev-export/nbdev-clean changed the tree: export and clean the notebooks, then commit"; fi

# 1a. No notebook exports when run as a test: two run at a time, and an export rewrites the modules the other imports.
python - $(grep -l 'nbdev_export()' nbs/*.ipynb nbs/*/*.ipynb 2>/dev/null) <<'PY' || fail "give each nbdev_export() cell above the directive '#| eval: false'"
import json, sys
runs = lambda c: c['cell_type'] == 'code' and 'nbdev_export()' in ''.join(c['source']) and 'eval: false' not in ''.join(c['source'])
bad = [f for f in sys.argv[1:] if any(map(runs, json.load(open(f))['cells']))]
for f in bad: print(f)
sys.exit(bool(bad))
PY

# 1b. The exported package passes the linter (ruff: unused imports, undefined names, redefinitions).
ruff check bincount || fail "ruff check bincount: fix the findings in the notebooks, then export"

# 2. Every notebook, and 3. the docs site, as jobs two at a time (much of a notebook's time is waiting on servers, so
#    two share 2 cores well), the slowest first. Each job's output goes to its own log; a failure prints its log's end.
#    The docs site is built offline and checked in headless Chromium; the build also writes README.md from
#    nbs/index.ipynb (and nbs/nbdev.yml from pyproject.toml): --check fails when they were stale, like step 1.
log=$(mktemp -d); export log
slowest=(19a_audit.ipynb 14_serve.ipynb 19_deploy.ipynb 02_ingest.ipynb 16_launch.ipynb docs 11_train.ipynb 12_export.ipynb
         17_tune.ipynb tutorials/audit.ipynb)  # tutorials/audit after 19a_audit: it reuses the features 19a_audit caches
mapfile -t nbs < <(cd nbs && find . -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' -not -name '_*' | sed 's|^\./||' | sort)
[[ -f tools/build_docs.py ]] && nbs+=(docs)
mapfile -t jobs < <(printf '%s\n' "${slowest[@]}" "${nbs[@]}" | awk 'NR==FNR {have[$0]=1; next} have[$0] && !seen[$0]++' <(printf '%s\n' "${nbs[@]}") -)
job() {
  local name=$1 start=$SECONDS out="$log/${1//\//_}.log" ok=1
  if [[ $name == docs ]]; then
    python tools/build_docs.py --check > "$out" 2>&1 || ok=0
    if [[ -f _docs/index.html ]]; then python tools/check_docs.py >> "$out" 2>&1 || ok=0; fi
  else nbdev-test "nbs/$name" --do-print --n-workers 1 > "$out" 2>&1 || ok=0; fi
  if [[ $ok == 1 ]]; then echo "ok   $name ($((SECONDS-start)) s)"; else echo "FAIL $name ($((SECONDS-start)) s)"; touch "$out.failed"; fi
}
export -f job
start=$SECONDS
printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} bash -c 'job "$1"' _ {}
for f in "$log"/*.failed; do [[ -e $f ]] && { echo "---- ${f%.failed}"; tail -40 "${f%.failed}"; }; done
nfail=$(ls "$log" | grep -c '\.failed$'); npass=$((${#jobs[@]} - nfail))
echo "notebooks and docs: $((SECONDS-start)) s"

echo "$npass passed, $((nfail+failed)) failed"
[[ $nfail -eq 0 && $failed -eq 0 ]]
