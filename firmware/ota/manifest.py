metadata(description="Over-the-air updates on the node: Ed25519 verification, SHA-512, release manifests, update keys.")

package("firmware/ota", base_path="../..")
