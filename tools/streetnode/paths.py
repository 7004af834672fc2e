"""Where the device code lives: the repository this package was installed from (editable)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
