"""The Kubernetes side: list-watch of Services, EndpointSlices and this Node into a ClusterState."""
