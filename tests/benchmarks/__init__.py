"""Benchmarks: gitrelease against the raw tools it wraps, measured in the same run.

    python -m tests.benchmarks [--quick] [--only NAME] [--json FILE] [--workdir DIR]

Each figure runs ours and a baseline several times, alternating them, and compares medians:
the machines are shared and noisy, so the ratio is the result and absolute times are context.
The data is built from nothing in a temporary directory (see `world`). Nothing here is
collected by pytest: no module is named ``test_*``.
"""
