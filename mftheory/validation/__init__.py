"""Validation experiments: trained networks against the mean-field predictions.

Needs the ``[validate]`` extra."""
