"""``python -m knet_st.bench``: see :mod:`knet_st.bench.harness`."""

import sys

from knet_st.bench.harness import main

sys.exit(main())
