import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# tools/ is a directory of scripts, not a package; tests import them by name
sys.path.insert(0, str(REPO / "tools"))
