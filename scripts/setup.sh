#!/usr/bin/env bash
# Sets up a fresh checkout: Debian's Fashion-MNIST package and a virtualenv at .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y -q dataset-fashion-mnist \
    || { $sudo_cmd apt-get update -q && $sudo_cmd apt-get install -y -q dataset-fashion-mnist; }
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
