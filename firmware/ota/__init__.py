# Over-the-air updates on the node. Here: checking what a release is.
#   ed25519.py   verify(public_key, message, signature) -> bool (RFC 8032 §5.1.7)
#   sha512.py    SHA-512 where hashlib has none (MicroPython)
#   release.py   the release manifest: signature, fields, may this node install it
#   keys.py      the config's ota.pubkeys, decoded
#   receiver.py  the node's side: status, trial, confirmation (always loaded)
#   transfer.py  the transfer into the inactive slot (loaded only while one is under way)
