"""Formats, each written once: dot paths, XML writing, request bodies, CSV/TSV lead files."""
