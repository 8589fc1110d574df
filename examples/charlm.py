"""The Knet tutorial's charlm example: see knet_st/examples/charlm.py.

The model code lives in the package, so that `knet-st run charlm` finds it
after `pip install`; this file makes it runnable from the source tree::

    python examples/charlm.py --help
"""

from knet_st.examples.charlm import *  # noqa: F401,F403  (predict, loss, train, ...)
from knet_st.examples.charlm import main

if __name__ == "__main__":
    main()
