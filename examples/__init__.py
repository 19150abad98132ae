"""Examples (``examples/custom_policy.py``)."""
