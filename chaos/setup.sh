#!/usr/bin/env bash
# Installs, through apt and only when missing, the system tools the licchaos suite needs.
# Idempotent: a second run installs nothing and says so. Prints what it did.
#
#   iproute2    `ip netns`, `ip link` (veth, bridge), `ip addr`: one network namespace per
#               node, a hub namespace holding the bridge, a client namespace.
#   nftables    `nft`: packet filters inside each node's namespace: partitions (drop by
#               source/destination), packet loss (`numgen random mod 100 < N drop`), and the
#               `dnat` rules that send peer links through the runner's userspace proxies.
#   faketime    libfaketime (`libfaketime.so.1`, pulled in by the `faketime` package): clock
#               skew on one node through LD_PRELOAD + FAKETIME ("+30s", "x1.5").
#   fiu-utils   libfiu (`fiu-run`, `fiu-ctrl`, `fiu_run_preload.so`, `fiu_posix_preload.so`):
#               EIO / ENOSPC on posix I/O calls of one node, switched on and off at run time.
#   eatmydata   `libeatmydata.so`: fsync/fdatasync become no-ops; the negative control the
#               durability checker must catch.
#   e2fsprogs   `mkfs.ext4`: a small loop-mounted ext4 image as a size-capped data dir for
#               the disk-full fault (util-linux's `losetup`/`mount` are in the base system).
set -euo pipefail

# tool to look for -> Debian package that provides it
declare -A NEED=(
  [ip]=iproute2
  [nft]=nftables
  [faketime]=faketime
  [fiu-run]=fiu-utils
  [fiu-ctrl]=fiu-utils
  [eatmydata]=eatmydata
  [mkfs.ext4]=e2fsprogs
)

missing=()
for tool in "${!NEED[@]}"; do
  if command -v "$tool" >/dev/null 2>&1; then
    echo "setup: $tool present"
  else
    pkg=${NEED[$tool]}
    echo "setup: $tool missing (package $pkg)"
    [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: nothing to install"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: need root to install: ${missing[*]}" >&2
  exit 1
fi

echo "setup: apt-get update"
apt-get update -qq
echo "setup: apt-get install ${missing[*]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"

for tool in "${!NEED[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "setup: $tool still missing after install" >&2
    exit 1
  }
done
echo "setup: installed ${missing[*]}"
