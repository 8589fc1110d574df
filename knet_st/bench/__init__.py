"""The Knet tutorial's benchmark table, re-measured for knet_st and its peers.

``python -m knet_st.bench --help`` for the options; :func:`main` is the entry point
(``main(argv)`` returns the exit status).
"""


def main(argv=None, prog="python -m knet_st.bench"):
    """Run the benchmark; see :func:`knet_st.bench.harness.main`."""
    from knet_st.bench.harness import main as harness_main
    return harness_main(argv, prog)
