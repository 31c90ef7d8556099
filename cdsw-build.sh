#!/usr/bin/env bash
# CML runs this from the project root when it builds a model version: install the serving
# dependencies (numpy, pandas, scikit-learn, ...) as ranges from setup.cfg, for whatever Python the
# runtime has. The project itself is not installed: the model file puts the project root on
# sys.path, so the build carries the monitoring library (and cmlbase, which it stands on), not the
# local workspace package.
set -euo pipefail
python3 - <<'PY' > /tmp/cml-monitor-requirements.txt
import configparser
cfg = configparser.ConfigParser()
cfg.read("setup.cfg")
print(cfg["options"]["install_requires"].strip())
PY
pip3 install --no-cache-dir -r /tmp/cml-monitor-requirements.txt
