"""The Knet tutorial's mnist example: see knet_st/examples/mnist.py.

The model code lives in the package, so that `knet-st run mnist` finds it
after `pip install`; this file makes it runnable from the source tree::

    python examples/mnist.py --help
"""

from knet_st.examples.mnist import *  # noqa: F401,F403  (predict, loss, train, ...)
from knet_st.examples.mnist import main

if __name__ == "__main__":
    main()
