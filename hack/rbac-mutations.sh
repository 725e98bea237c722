#!/usr/bin/env bash
# Shows that every rule of the manager's generated ClusterRole is needed: for each rule in
# turn, it removes the rule from config/rbac/role.yaml, runs the controllers suite (which runs
# the manager with exactly that role) and reports whether a spec failed. Run it in a scratch
# worktree: it rewrites role.yaml while it runs and restores it at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
role=config/rbac/role.yaml
cp "$role" /tmp/role.yaml.orig
trap 'cp /tmp/role.yaml.orig "$role"' EXIT
assets=$(hack/setup-envtest.sh)
n=$(grep -c '^- apiGroups:' "$role")
# RULES="7 8" checks only those rules.
for i in ${RULES:-$(seq 1 "$n")}; do
  awk -v skip="$i" '/^- apiGroups:/{k++} k!=skip || !/^( |-)/' /tmp/role.yaml.orig >"$role"
  rule=$(awk -v want="$i" '/^- apiGroups:/{k++} k==want' /tmp/role.yaml.orig | tr -s ' \n' ' ')
  if out=$(KUBEBUILDER_ASSETS="$assets" go test -count=1 ./controllers/ -ginkgo.fail-fast 2>&1); then
    echo "NOT NEEDED BY ANY SPEC: $rule"
  else
    failed=$(echo "$out" | grep -a '\[FAIL\]' | sed 's/\x1b\[[0-9;]*m//g' | sed 's/^ *\[FAIL\] *//' | head -3 | tr '\n' ';')
    echo "needed: $rule -> $failed"
  fi
done
