# The node's update keys: the Ed25519 public keys of its config's ota.pubkeys, decoded.
#
#   keys = pubkeys(cfg)      # [32-byte key, ...], or None: the node refuses every update
#   key = decode(text)       # 32 bytes from the base64 of fleet.pub, or None

import binascii

NO_KEYS = "no ota.pubkeys in the node's config: updates are refused (provision with --ota-pubkey)"


def decode(text):
    """32 bytes from a base64 Ed25519 public key (44 characters), or None if it is not one."""
    try:
        if type(text) is not str or len(text) != 44:
            return None
        key = binascii.a2b_base64(text)
    except (ValueError, TypeError):  # binascii.Error is a ValueError
        return None
    if len(key) != 32 or binascii.b2a_base64(key).strip() != text.encode():
        return None
    return key


def pubkeys(cfg):
    """The decoded ota.pubkeys of a validated config, or None when it has none (or only
    keys that do not decode, which validation already refuses)."""
    ota = cfg.get("ota") or {}
    keys = []
    for text in ota.get("pubkeys") or ():
        key = decode(text)
        if key is not None:
            keys.append(key)
    return keys or None
