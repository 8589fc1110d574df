"""The Knet tutorial's housing example: see knet_st/examples/housing.py.

The model code lives in the package, so that `knet-st run housing` finds it
after `pip install`; this file makes it runnable from the source tree::

    python examples/housing.py --help
"""

from knet_st.examples.housing import *  # noqa: F401,F403  (predict, loss, train, ...)
from knet_st.examples.housing import main

if __name__ == "__main__":
    main()
