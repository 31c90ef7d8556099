"""AMP task: install the project (and its dependencies) into the project's Python environment."""

import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "-e", "."])
