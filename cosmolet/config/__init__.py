"""The configuration: its schema (pure, importable by the engine) and its loader (file,
environment).
"""
