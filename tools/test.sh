#!/usr/bin/env bash
# The whole test suite: notebooks (nbdev-test), export/clean checks, docs site in a browser.
# Prints a closing line "N passed, N failed" (N = notebooks), since nbdev-test prints no count.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PATH="$PWD/$BIN:$PATH" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
# nbdev-test runs each notebook in a thread, and glibc gives a thread other than the main one malloc heaps of at most
# 64 MB, where `tune_cpu` cannot keep the larger tensors of training: one heap for all threads (~1/3 off a training).
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

# 1b. The exported package passes the linter (ruff: unused imports, undefined names, redefinitions).
ruff check bincount || fail "ruff check bincount: fix the findings in the notebooks, then export"

# 2. Every notebook, one at a time so the count is exact and a failure names its notebook.
log=$(mktemp -d)
mapfile -t nbs < <(cd nbs && find . -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' -not -name '_*' | sed 's|^\./||' | sort)
npass=0; nfail=0
for nb in "${nbs[@]}"; do
  start=$SECONDS
  if nbdev-test "nbs/$nb" --do-print --n-workers 1 > "$log/${nb//\//_}.log" 2>&1; then
    npass=$((npass+1)); echo "ok   $nb ($((SECONDS-start)) s)"
  else
    nfail=$((nfail+1)); echo "FAIL $nb ($((SECONDS-start)) s)"; tail -40 "$log/${nb//\//_}.log"
  fi
done

# 3. The docs site, built offline and checked in headless Chromium. The build also writes README.md from
#    nbs/index.ipynb (and nbs/nbdev.yml from pyproject.toml): --check fails when they were stale, like step 1.
if [[ -f tools/build_docs.py ]]; then
  start=$SECONDS; ok=1
  python tools/build_docs.py --check || ok=0
  if [[ -f _docs/index.html ]]; then python tools/check_docs.py || ok=0; fi
  if [[ $ok == 1 ]]; then npass=$((npass+1)); echo "ok   docs site ($((SECONDS-start)) s)"
  else nfail=$((nfail+1)); echo "FAIL docs site ($((SECONDS-start)) s)"; fi
fi

echo "$npass passed, $((nfail+failed)) failed"
[[ $nfail -eq 0 && $failed -eq 0 ]]
