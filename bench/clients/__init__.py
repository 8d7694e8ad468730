"""One module per client measured by ``python -m bench``; each runs in its own process.

Every module has a ``SCENARIOS`` table from scenario name to a function taking the
scenario's parameters (keywords) and returning a dict of figures (see ``bench._proc``).
The RPC servers are in ``SERVERS``: each runs until its standard input closes.
"""
