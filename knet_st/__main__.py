"""``python -m knet_st``: the ``knet-st`` command (see :mod:`knet_st.cli`)."""

import sys

from knet_st.cli import main

if __name__ == "__main__":
    sys.exit(main())
