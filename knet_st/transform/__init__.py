"""The compiler: passes that turn a Python function into forward and backward
functions (see :mod:`knet_st.transform.compiler` for the pipeline)."""
