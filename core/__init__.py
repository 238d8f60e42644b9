"""Plumbing that every app uses: the error type, Redis, worker presence, JSON and validation helpers.

It sits below `console`, `inference` and `registry` and imports none of them.
"""
