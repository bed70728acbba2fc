"""Where the cluster state comes from: the Kubernetes watch, or an objects file. Both feed the same
typed sink.
"""
