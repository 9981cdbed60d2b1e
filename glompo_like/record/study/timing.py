"""How often a manager syncs with its study (no database needed to read it)."""

__all__ = ["SYNC_EVERY"]

#: seconds between two syncs of a manager with its study
SYNC_EVERY = 0.25
