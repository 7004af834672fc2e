"""Over-the-air updates, the host side: the fleet's signing key (keys.py, `streetnode
keys new`) and signed releases (release.py, `streetnode release`, and check() for the
rollout to use before it sends anything). The node's side is firmware/ota/."""
