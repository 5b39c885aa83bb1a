"""CAIO runs beside the host (``caio run``); the host drives it with ``AsyncCaioClient``."""
