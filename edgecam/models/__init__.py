"""The model store (manifest, cache) and the torch side that builds its artifacts."""
