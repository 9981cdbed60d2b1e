"""Level 1 backends (threads and processes) and process hygiene (no orphans)."""
