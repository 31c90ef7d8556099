#!/usr/bin/env bash
# CML runs this from the project root when it builds a model version: install the serving
# dependencies (numpy, pandas, scikit-learn, ...) from setup.cfg into the build image.
set -euo pipefail
pip3 install --no-cache-dir .
