#!/usr/bin/env bash
# Shows that every rule of the manager's generated ClusterRole is needed: for each rule in
# turn, it removes the rule from config/rbac/role.yaml and runs two tests that run the manager
# with exactly that role, reporting which failed:
# - internal/install's TestInstallAsShipped, which applies the whole rendered install to an
#   API server with OwnerReferencesPermissionEnforcement on and runs the manager as its
#   ServiceAccount. It alone proves the */finalizers rule: only that admission plugin asks for
#   it (to set blockOwnerDeletion on an ownerReference), and kube-apiserver and envtest leave
#   the plugin off by default.
#   With the templates ConfigMap, Events and metrics scrape it drives, it fails without any
#   one of the rules by itself today.
# - the controllers suite (only when the install test passed), which covers every feature.
# Run it in a scratch worktree: it rewrites role.yaml while it runs and restores it at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
role=config/rbac/role.yaml
orig=$(mktemp)
cp "$role" "$orig"
trap 'cp "$orig" "$role"; rm -f "$orig"' EXIT
assets=$(hack/setup-envtest.sh)
n=$(grep -c '^- apiGroups:' "$role")
# RULES="7 8" checks only those rules.
for i in ${RULES:-$(seq 1 "$n")}; do
  awk -v skip="$i" '/^- apiGroups:/{k++} k!=skip || !/^( |-)/' "$orig" >"$role"
  rule=$(awk -v want="$i" '/^- apiGroups:/{k++} k==want' "$orig" | tr -s ' \n' ' ')
  if ! out=$(KUBEBUILDER_ASSETS="$assets" go test -count=1 -run '^TestInstallAsShipped$' ./internal/install/ 2>&1); then
    failed=$(echo "$out" | grep -a -e '--- FAIL' | sed 's/^ *--- FAIL: *//' | tr '\n' ';')
    echo "needed: $rule -> $failed"
  elif out=$(KUBEBUILDER_ASSETS="$assets" go test -count=1 ./controllers/ -ginkgo.fail-fast 2>&1); then
    echo "NOT NEEDED BY ANY SPEC: $rule"
  else
    failed=$(echo "$out" | grep -a '\[FAIL\]' | sed 's/\x1b\[[0-9;]*m//g' | sed 's/^ *\[FAIL\] *//' | head -3 | tr '\n' ';')
    echo "needed: $rule -> $failed"
  fi
done
