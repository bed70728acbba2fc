"""The node's own network state over netlink (pyroute2), for numbered mode's peer resolution."""
