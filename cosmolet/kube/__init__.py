"""The Kubernetes edge: the API client, the reflectors that list-watch one resource each, and the
Event recorder.
"""
