#!/usr/bin/env bash
# Installs the Debian packages that mosquitto-ota needs to build, test and run the demo,
# only those that are missing. Safe to run again; needs root (or sudo) on Debian 12.
set -euo pipefail
PKGS=(build-essential cmake pkg-config
      mosquitto mosquitto-dev libmosquitto-dev mosquitto-clients
      libmongoc-dev libbson-dev libcbor-dev libsqlite3-dev sqlite3 libcjson-dev
      libssl-dev zlib1g-dev libdeflate-dev libcmocka-dev
      python3 python3-paho-mqtt python3-cbor2 python3-cryptography
      python3-bson python3-pymongo python3-bson-ext python3-pymongo-ext
      clang libclang-rt-14-dev openssl
      tzdata valgrind gnuplot-nox
      chromium chromium-driver python3-selenium websockify)
# The web console's build (tools/console/build.sh: npm ci) needs node and npm; a machine that has
# them from elsewhere (e.g. nodesource, whose nodejs conflicts with Debian's npm) keeps them.
command -v node >/dev/null || PKGS+=(nodejs)
command -v npm >/dev/null || PKGS+=(npm)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
