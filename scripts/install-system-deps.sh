#!/usr/bin/env bash
# Installs the Debian packages coffer's tests, demo and benchmarks shell out to.
#
# Runs before every `npm test`, so the common case (everything already there) must cost a few
# dpkg-query calls and nothing else: no apt-get update, no network.
#
#   skopeo, umoci            interop: copy / unpack OCI images with the reference tools
#   docker-registry          a real distribution 2.8 registry for the integration tests
#   apache2-utils            htpasswd (bcrypt) for the registry's basic-auth mode
#   libfuse2, fuse           FUSE 2 runtime: coffer's FUSE binding and gocryptfs link libfuse2; fusermount unmounts
#   libfuse-dev, pkg-config  npm run build compiles native/fuse-bridge.c against libfuse 2.9's headers
#   gocryptfs                interop peer of lib/storage: gocryptfs (init, mount, -fsck, -info) and
#                            gocryptfs-xray (-dumpmasterkey) in test/interop/gocryptfs*.test.ts, e2e fs-cli
#   swtpm, swtpm-tools       software TPM for attestation tests
#   tpm2-tools               tpm2_* CLIs to provision and read the software TPM
#   libtss2-tcti-swtpm0      the `swtpm:` TCTI the tests use to reach swtpm (not a tpm2-tools dependency)
#   openssl                  keys and self-signed certificates for test fixtures
#   gnupg                    gpg and gpg-agent: skopeo's pgp: recipients, OpenPGP test keys
#   jq                       JSON in the demo scripts
#   fio                      bench/fs.ts: sequential and random I/O through coffer, gocryptfs, plain
#   postgresql               a real PostgreSQL server for the KBS postgres store's integration tests
#   mount                    mount(8)/umount(8): the CSI driver's bind mounts (test/unit/csi, test/integration/csi*)
#   python3-nacl,            an independent peer (libsodium secretbox, scrypt, ECDSA) for cosign
#   python3-cryptography     key files and signatures in test/interop/sign-skopeo.test.ts
#   zstd                     zstd-compressed layers for the guest's layer reader (test/interop/layer-stream)
#   attr                     setfattr/getfattr: lib/image/unpack marks overlayfs opaque dirs (trusted.overlay.opaque)
#   gcc, libc6-dev           npm run build compiles native/gcm-blocks.c (AES-GCM for lib/storage) against Node's headers
set -euo pipefail

PACKAGES=(
  skopeo umoci docker-registry apache2-utils
  libfuse2 fuse libfuse-dev pkg-config gocryptfs
  swtpm swtpm-tools tpm2-tools libtss2-tcti-swtpm0
  openssl jq gnupg fio
  postgresql
  mount
  python3-nacl python3-cryptography
  zstd
  attr
  gcc libc6-dev
)

# One dpkg-query for all packages keeps the fast path fast. It prints nothing (and exits non-zero)
# for a package it has never heard of, which the loop below counts as missing too.
declare -A status=()
while IFS=$'\t' read -r name state; do
  status["${name%%:*}"]="$state"
done < <(dpkg-query -W -f='${Package}\t${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if [[ "${status[$pkg]:-}" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "install-system-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-system-deps: not root and sudo is not available; install them as root:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "install-system-deps: installing ${missing[*]}" >&2
"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
