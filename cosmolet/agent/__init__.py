"""The agent: ExaBGP's API process. The reconciler turns route and peer changes into ExaBGP
commands; the wiring runs its threads, HTTP endpoints and metrics.
"""
