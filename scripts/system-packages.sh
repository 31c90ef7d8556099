#!/usr/bin/env bash
# System packages the tests use, installed when missing (Debian): `make test` runs this first.
#   python3-venv  `python3 -m venv` for the project's virtualenv (missing on a minimal Debian)
#   postgresql    a throwaway PostgreSQL server for the store tests (run as the `postgres` user)
#   chromium      headless rendering of the report and the dashboard
#   openjdk-17-jre-headless  the JVM of the local Spark (pyspark) data connections and the Spark engine
# As root it installs them with apt-get; as another user it prints the one command to run and fails.
# Usage: system-packages.sh [all|venv]   (venv: only what `python3 -m venv` needs, for `make demo`)
set -euo pipefail

PYTHON=${PYTHON:-python3}
what=${1:-all}
need=()
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need+=(python3-venv)
fi
if [ "$what" = "all" ]; then
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if ! getent passwd postgres >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  need+=(postgresql)  # the server refuses to run as root: the tests run it as this system user
fi
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  need+=(chromium)
fi
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  need+=(openjdk-17-jre-headless)
fi
fi
[ ${#need[@]} -eq 0 ] && exit 0

mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
command="apt-get update && apt-get install -y --no-install-recommends ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]}" >&2
  echo "run this once as root, then run make again:" >&2
  echo "  sudo sh -c '$command'" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages: ${need[*]}; this is not a Debian machine: install them with its package manager" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
