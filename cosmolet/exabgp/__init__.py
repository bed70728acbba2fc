"""The ExaBGP edge: its configuration, its API wire format, its launcher and the supervisor of
`cosmolet start`.
"""
