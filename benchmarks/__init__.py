"""Benchmarks of mftheory's grid-scale speed (issue 3), with the slow path as the baseline.

Run ``python -m benchmarks`` from the repository root (``--help`` for the options). Every
benchmark times the fast core (median of repeated runs after a warm-up, plus the first call
in a fresh process), and measures the slow adaptive path of :mod:`mftheory.reference` in the
same run on a small random subsample, extrapolated per point, for the speed-up. Timing is
kept out of the unit tests; the results of a full run are recorded in ``docs/benchmarks.md``.

Modules: :mod:`benchmarks.timing` (timers, the machine), :mod:`benchmarks.cases` (one
function per benchmark), :mod:`benchmarks.report` (the table) and :mod:`benchmarks.cli`.
"""
