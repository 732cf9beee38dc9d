#!/usr/bin/env bash
# Installs the Debian packages maskacc needs: the C++ toolchain (always) and, with --bench,
# the baseline libraries (oneDNN, OpenBLAS) and PyTorch, and with --data the Fashion-MNIST data set
# (dataset-fashion-mnist, read by src/data/fashion-mnist.ts). Idempotent: installs only what is missing.
set -euo pipefail

usage() { echo "usage: $0 [--bench] [--data]" >&2; }

bench=0
data=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    --data) data=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage; exit 2 ;;
  esac
done

# make: cmake's default generator backend (a recommends of cmake, so not always present).
wanted=(g++ cmake make)
if [[ $bench == 1 ]]; then
  wanted+=(libdnnl-dev libopenblas-dev python3-torch)
fi
# Installs the IDX files under /usr/share/datasets/fashion-mnist (FASHION_MNIST_DIR).
if [[ $data == 1 ]]; then
  wanted+=(dataset-fashion-mnist)
fi

# dpkg -s exits 0 for "deinstall" leftovers too, so check the status line itself.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for pkg in "${wanted[@]}"; do
  if installed "$pkg"; then
    echo "setup-system: $pkg already installed"
  else
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} == 0 ]]; then
  echo "setup-system: nothing to do"
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) != 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "setup-system: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
  sudo_cmd=(sudo)
fi

echo "setup-system: installing ${missing[*]}"
# Only refresh the package lists when we actually install something.
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup-system: installed ${missing[*]}"
