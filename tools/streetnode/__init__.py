"""streetnode: the host-side command for technicians, field crews and CI."""

__version__ = "0.1.0"
