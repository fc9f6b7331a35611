"""Plumbing every layer uses: the settings dataclasses' options (their command line and checks),
atomic file output and tables, device selection, numerical precision, seeds, and errors."""
