"""Layer 0: pure values and rules (no I/O): refs, plans, digests, headers, units, windows, jobs."""
