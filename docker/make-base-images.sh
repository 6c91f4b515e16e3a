#!/usr/bin/env bash
# Makes, from Debian's packages, the two base images docker/Dockerfile names, for a machine with
# a Docker engine but no image registry (nothing can be pulled). With Docker Hub you do not need
# this: `docker compose build` pulls the same names.
#
#   debian:bookworm-slim            debootstrap --variant=minbase bookworm, imported
#   rust:<version>-slim-bookworm    the same plus gcc and libc6-dev, and this machine's Rust
#                                   toolchain (rustc --print sysroot, without its docs) laid out as
#                                   the official image does (/usr/local/cargo/bin on PATH); it
#                                   trusts the certificate authorities this machine trusts, so
#                                   cargo reaches crates.io through the same (TLS-inspecting) proxy
#
# <version> is the RUST_VERSION default in docker/Dockerfile; this machine's toolchain must be at
# least that. Images that already exist are kept. `--runtime-only` makes only debian:bookworm-slim
# (enough for docker/Dockerfile.prebuilt). Needs root (debootstrap), installs debootstrap
# from Debian's packages if missing, and takes about two minutes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rust_version="$(sed -n 's/^ARG RUST_VERSION=//p' "$here/Dockerfile" | head -1)"
runtime="debian:bookworm-slim"
builder="rust:${rust_version}-slim-bookworm"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

have() { docker image inspect "$1" >/dev/null 2>&1; }
# --runtime-only: just debian:bookworm-slim (for docker/Dockerfile.prebuilt, as in .ci/run).
runtime_only=false
[ "${1:-}" = "--runtime-only" ] && runtime_only=true
if have "$runtime" && { $runtime_only || have "$builder"; }; then
  echo "base images present: $runtime$($runtime_only || echo ", $builder")"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "installing debootstrap from Debian's packages"
  # The same lock as .ci/run's installs (apt-get update does not wait for another apt).
  for try in $(seq 1 60); do
    if flock /tmp/failover-lab-apt.lock bash -c \
      'apt-get -o DPkg::Lock::Timeout=300 update -qq && apt-get -o DPkg::Lock::Timeout=300 install -y -qq debootstrap >/dev/null'; then
      break
    fi
    [ "$try" = 60 ] && { echo "could not install debootstrap" >&2; exit 1; }
    echo "apt is busy or failed (try $try of 60); again in 5 s"
    sleep 5
  done
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! have "$runtime"; then
  echo "making $runtime with debootstrap (minbase bookworm)"
  debootstrap --variant=minbase bookworm "$work/runtime" "$mirror" >"$work/runtime.log" 2>&1 \
    || { tail -20 "$work/runtime.log"; exit 1; }
  rm -rf "$work/runtime/var/cache/apt/archives/"*.deb "$work/runtime/var/lib/apt/lists/"*
  tar -C "$work/runtime" -c . | docker import --change 'CMD ["bash"]' - "$runtime" >/dev/null
  echo "made $runtime"
fi

if ! $runtime_only && ! have "$builder"; then
  sysroot="$(rustc --print sysroot)"
  have_version="$(rustc --version | awk '{print $2}')"
  echo "making $builder from this machine's Rust $have_version and debootstrap (with gcc, libc6-dev)"
  debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates bookworm "$work/builder" "$mirror" \
    >"$work/builder.log" 2>&1 || { tail -20 "$work/builder.log"; exit 1; }
  rm -rf "$work/builder/var/cache/apt/archives/"*.deb "$work/builder/var/lib/apt/lists/"*
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$work/builder/etc/ssl/certs/ca-certificates.crt"
  fi
  mkdir -p "$work/builder/usr/local/rust" "$work/builder/usr/local/cargo/bin"
  cp -a "$sysroot/bin" "$sysroot/lib" "$work/builder/usr/local/rust/"
  for tool in cargo rustc rustdoc; do
    ln -s "/usr/local/rust/bin/$tool" "$work/builder/usr/local/cargo/bin/$tool"
  done
  tar -C "$work/builder" -c . | docker import \
    --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$builder" >/dev/null
  echo "made $builder"
fi
