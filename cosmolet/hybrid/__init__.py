"""The hybrid-mode edge: the fabric switches found over netlink, the node's FRR (zebra router
advertisements) and BFD.
"""
