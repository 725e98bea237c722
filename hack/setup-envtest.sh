#!/usr/bin/env bash
# Provides kube-apiserver and etcd for envtest under bin/k8s/<version>/ and prints that
# directory (for KUBEBUILDER_ASSETS). The first run tries controller-runtime's setup-envtest
# download; where the network does not allow it (as on Roster's CI) both binaries are built
# from the Go module proxy, pinned, and cached by version so a second run takes seconds.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
SETUP_ENVTEST_VERSION="${SETUP_ENVTEST_VERSION:-release-0.25}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${root}/bin/k8s/${K8S_VERSION}-etcd${ETCD_VERSION}"
log() { echo "setup-envtest: $*" >&2; }

if [[ -x "${dest}/kube-apiserver" && -x "${dest}/etcd" ]]; then
  echo "${dest}"
  exit 0
fi
mkdir -p "${dest}"

try_download() {
  [[ "${ROSTER_ENVTEST_DOWNLOAD:-1}" == "1" ]] || return 1
  local tmp
  tmp="$(mktemp -d)"
  log "trying the setup-envtest download of Kubernetes ${K8S_VERSION}"
  if timeout 120 env GOBIN="${tmp}" go install "sigs.k8s.io/controller-runtime/tools/setup-envtest@${SETUP_ENVTEST_VERSION}" >&2 2>/dev/null &&
    dir="$(timeout 60 "${tmp}/setup-envtest" use "${K8S_VERSION}" --bin-dir "${tmp}/assets" -p path 2>/dev/null)" &&
    [[ -x "${dir}/kube-apiserver" && -x "${dir}/etcd" ]]; then
    # setup-envtest only knows Kubernetes versions; its etcd is whatever that release ships.
    cp "${dir}/kube-apiserver" "${dir}/etcd" "${dest}/"
    rm -rf "${tmp}"
    return 0
  fi
  chmod -R u+w "${tmp}" 2>/dev/null || true
  rm -rf "${tmp}"
  log "download not available here; building from the Go module proxy instead"
  return 1
}

build_etcd() {
  local mod="${root}/bin/k8s/build/etcd-${ETCD_VERSION}"
  mkdir -p "${mod}"
  cat >"${mod}/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (
    cd "${mod}"
    [[ -f go.mod ]] || go mod init roster.dev/envtest-etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" >&2
    go mod tidy >&2
    CGO_ENABLED=0 go build -trimpath -o "${dest}/etcd" .
  )
}

build_kube_apiserver() {
  local mod="${root}/bin/k8s/build/kubernetes-${K8S_VERSION}"
  mkdir -p "${mod}"
  (
    cd "${mod}"
    rm -f go.mod go.sum
    go mod init roster.dev/envtest-kube-apiserver >/dev/null 2>&1
    # kubernetes' go.mod replaces every staging module with a local path; the module proxy
    # has them as versions v0.Y.Z, so replace each one with that version instead.
    local gomod staging minor
    gomod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    minor="${K8S_VERSION#*.}"
    staging="$(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => ./staging/.*#\1#p' "${gomod}")"
    [[ -n "${staging}" ]] || { log "no staging replaces found in ${gomod}"; exit 1; }
    {
      echo "require k8s.io/kubernetes v${K8S_VERSION}"
      for m in ${staging}; do echo "replace ${m} => ${m} v0.${minor}"; done
    } >>go.mod
    cat >main.go <<'GO'
package main

import _ "k8s.io/kubernetes/cmd/kube-apiserver/app"

func main() {}
GO
    go mod tidy >&2
    rm -f main.go
    CGO_ENABLED=0 go build -trimpath -o "${dest}/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  )
}

if ! try_download; then
  log "building etcd v${ETCD_VERSION}"
  build_etcd
  log "building kube-apiserver v${K8S_VERSION} (about 6 minutes the first time)"
  build_kube_apiserver
fi
log "ready in ${dest}"
echo "${dest}"
