"""The FRR edge: hybrid mode's fabric switches found over netlink, the node's FRR (zebra router
advertisements in hybrid mode) and BFD, which serves both modes.
"""
