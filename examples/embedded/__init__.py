"""CAIO runs inside the host's process; the host restarts itself into a new release."""
