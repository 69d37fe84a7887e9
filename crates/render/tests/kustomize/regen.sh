#!/usr/bin/env bash
# Regenerate the Kustomize compatibility corpus from the reference implementation.
#
#   cases/<name>/   -> golden/<name>.yaml          (exact stdout of `kubectl kustomize cases/<name>`)
#   errors/<name>/  -> errors/<name>/kubectl-error.txt  (kubectl's stderr; the command must FAIL)
#
# Goldens whose case directory no longer exists are deleted.
#
# stderr is normalised so the files are stable across machines and runs:
#   * the klog header "E1128 13:12:54.750393    8112 run.go:72]" becomes "E0000 00:00:00.000000 run.go:72]"
#   * the absolute path of this directory becomes "<KUSTOMIZE_TESTS>"
#
# The goldens were produced with kubectl v1.32 (embedded Kustomize v5.5.0);
# other versions may differ (hashes, ordering, warnings).
set -euo pipefail

EXPECTED_KUSTOMIZE="v5.5.0"

if ! command -v kubectl >/dev/null 2>&1; then
  echo "regen.sh: error: 'kubectl' not found in PATH." >&2
  echo "regen.sh: install kubectl (v1.32, embedded Kustomize ${EXPECTED_KUSTOMIZE}) to regenerate the goldens." >&2
  exit 1
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
cd "$here"

kustomize_version="$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p' || true)"
if [[ "$kustomize_version" != "$EXPECTED_KUSTOMIZE" ]]; then
  echo "regen.sh: warning: kubectl embeds Kustomize '${kustomize_version:-unknown}', goldens were made with ${EXPECTED_KUSTOMIZE}" >&2
fi

shopt -s nullglob

normalize_stderr() {
  sed -E \
    -e 's/^([EWIF])[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+ +[0-9]+ /\10000 00:00:00.000000 /' \
    -e "s#${here}#<KUSTOMIZE_TESTS>#g"
}

failures=0
mkdir -p golden

# 1. Drop goldens whose case was deleted.
for golden in golden/*.yaml; do
  name="$(basename "$golden" .yaml)"
  if [[ ! -d "cases/$name" ]]; then
    echo "removing stale golden: $golden"
    rm -f -- "$golden"
  fi
done

# 2. Successful cases -> golden/<name>.yaml
tmp_out="$(mktemp)"
tmp_err="$(mktemp)"
trap 'rm -f "$tmp_out" "$tmp_err"' EXIT

count=0
for dir in cases/*/; do
  name="$(basename "$dir")"
  if kubectl kustomize "cases/$name" >"$tmp_out" 2>"$tmp_err"; then
    cp "$tmp_out" "golden/$name.yaml"
    count=$((count + 1))
  else
    echo "FAIL: kubectl kustomize cases/$name exited non-zero (case must be accepted):" >&2
    normalize_stderr <"$tmp_err" | sed 's/^/    /' >&2
    failures=$((failures + 1))
  fi
done
echo "regenerated $count golden file(s)"

# 3. Error cases -> errors/<name>/kubectl-error.txt
ecount=0
for dir in errors/*/; do
  name="$(basename "$dir")"
  if kubectl kustomize "errors/$name" >"$tmp_out" 2>"$tmp_err"; then
    echo "FAIL: kubectl kustomize errors/$name succeeded, but error cases must be rejected" >&2
    failures=$((failures + 1))
  else
    normalize_stderr <"$tmp_err" >"errors/$name/kubectl-error.txt"
    ecount=$((ecount + 1))
  fi
done
echo "regenerated $ecount error file(s)"

if ((failures > 0)); then
  echo "regen.sh: $failures problem(s), see above" >&2
  exit 1
fi
