"""One blueprint per resource; each view authenticates, validates, calls one service and
maps its result (errors are mapped in api/errors.py)."""
