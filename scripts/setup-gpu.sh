#!/usr/bin/env bash
# Makes a WebGPU adapter available to Node's Dawn on Debian/Ubuntu.
# A machine with a GPU driver needs nothing; otherwise this installs a software Vulkan driver:
# Mesa lavapipe >= 25 (Debian 12 backports; about 5x faster than SwiftShader), else SwiftShader from chromium.
set -euo pipefail

if command -v nvidia-smi >/dev/null 2>&1 || ls /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json >/dev/null 2>&1; then
  echo "setup-gpu: an NVIDIA driver is present; nothing to install"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "setup-gpu: installing a software Vulkan driver needs root: sudo bash $0" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")

lavapipe_ok() {
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  [[ -n $v ]] && dpkg --compare-versions "$v" ge 25 && [[ -f /usr/share/vulkan/icd.d/lvp_icd.json ]]
}

if ! lavapipe_ok; then
  if [[ $codename == bookworm ]]; then
    # Debian 12's own Mesa (22.3) is rejected by Dawn; the backports suite has Mesa 25.
    if [[ -f /etc/apt/sources.list.d/debian.sources ]] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
      awk 'BEGIN{RS="";ORS="\n\n"} NR==1{sub(/Suites: [^\n]*/,"Suites: bookworm-backports");print}' \
        /etc/apt/sources.list.d/debian.sources > /etc/apt/sources.list.d/backports.sources
    elif ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/backports.list
    fi
    apt-get update -qq
    apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null || true
  else
    apt-get update -qq
    apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null || true
  fi
fi

if lavapipe_ok; then
  echo "setup-gpu: Mesa lavapipe $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) installed"
  exit 0
fi

echo "setup-gpu: lavapipe >= 25 unavailable; installing SwiftShader (chromium)"
apt-get install -y -qq chromium libvulkan1 >/dev/null
echo "setup-gpu: SwiftShader installed; tgnet finds /usr/lib/chromium/vk_swiftshader_icd.json by itself"
