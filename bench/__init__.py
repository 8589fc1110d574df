"""The Knet tutorial's benchmark table, re-measured for knet_st and its peers.

``python -m bench --help`` for the options; :func:`main` is the entry point
(``main(argv)`` returns the exit status).
"""


def main(argv=None):
    """Run the benchmark; see :func:`bench.harness.main`."""
    from bench.harness import main as harness_main
    return harness_main(argv)
