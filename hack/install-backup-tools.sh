#!/usr/bin/env bash
# What the backup tests (tests/test_backup_program.py) need, once:
#   - Debian's `age` (the reference implementation, the same package the backup image carries): the program
#     encrypts the generated Secrets with it, the test decrypts with the country's identity;
#   - PostgreSQL's server and client binaries: hack/install-federation-tools.sh installs Debian's `postgresql`;
#   - an S3-compatible server: moto's server mode (moto[server] from PyPI, Apache-2.0) in a venv of its own under
#     the cache, keyed by version: botocore pins python-dateutil<3 and the operator's kubernetes client needs >=3,
#     so it cannot share the project's venv. Test-only: nothing of it is in the operator or the backup image.
#
#   hack/install-backup-tools.sh            install what is missing (quiet; idempotent)
#   hack/install-backup-tools.sh --print    print the moto_server path
set -euo pipefail

MOTO_VERSION=5.2.5
CACHE="${SOVEREIGN_SUITE_CACHE:-$HOME/.cache/sovereign-suite}"
venv="$CACHE/moto-$MOTO_VERSION-venv"
log() { echo "[install-backup-tools] $*" >&2; }

if [[ "${1:-}" == "--print" ]]; then [[ -e "$venv/.complete" ]] && echo "$venv/bin/moto_server"; exit $?; fi

"$(dirname "$0")/install-federation-tools.sh"
if ! command -v age >/dev/null || ! command -v age-keygen >/dev/null; then
  sudo=(); [[ "$(id -u)" == 0 ]] || sudo=(sudo)
  log "installing Debian's age"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends age >/dev/null
fi
if [[ ! -e "$venv/.complete" ]]; then
  log "installing moto[server]==$MOTO_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "moto[server]==$MOTO_VERSION"
  touch "$venv/.complete"  # an interrupted install is redone, never half used
fi
