"""Stage logic (plan units, process one unit, summarise), called by the thin Prefect flows."""
