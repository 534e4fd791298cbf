"""Sources turn a ref into a :class:`~pullman.plan.Plan` of files."""
