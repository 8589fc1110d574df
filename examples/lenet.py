"""The Knet tutorial's lenet example: see knet_st/examples/lenet.py.

The model code lives in the package, so that `knet-st run lenet` finds it
after `pip install`; this file makes it runnable from the source tree::

    python examples/lenet.py --help
"""

from knet_st.examples.lenet import *  # noqa: F401,F403  (predict, loss, train, ...)
from knet_st.examples.lenet import main

if __name__ == "__main__":
    main()
