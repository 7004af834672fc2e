"""Where the device code lives: the repository this package was installed from (editable),
and how the host tools import it."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def device_code():
    """Make firmware/, drivers/ and hal/ importable: installed as packages (a Raspberry Pi
    gateway's `pip install`), or from the repository of an editable install."""
    try:
        import firmware.config  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO))
        import firmware.config  # noqa: F401
