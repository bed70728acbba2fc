"""cosmolet: advertise healthy Kubernetes Service IPs to a BGP fabric through ExaBGP."""

__version__ = "0.1.0"
