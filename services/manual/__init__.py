"""Manual delivery and export: a recipient's leads written as a CSV or TSV file.

Not a process: the domain code ``leadflow leads deliver|export`` calls (and the console is
to call). ``files`` takes and writes the leads; ``commands`` adds what a command line
needs (the output file, a progress counter on the terminal).
"""
