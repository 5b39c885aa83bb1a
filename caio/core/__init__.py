"""Settings, manifest, version info, tokens, state files and errors (no FastAPI)."""
