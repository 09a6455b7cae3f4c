"""One folder per runtime. See base.py for the Backend interface and registry.py for the one table."""
