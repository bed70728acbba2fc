"""The route engine: cluster records + config + node -> the routes this node advertises. Pure: no
threads, sockets, processes, files or environment, and none of the kubernetes, exabgp, pyroute2
or prometheus libraries (tests/unit/test_architecture.py checks it).
"""
