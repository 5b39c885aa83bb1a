"""CAIO: a FastAPI service that updates itself through verified TUF releases."""
