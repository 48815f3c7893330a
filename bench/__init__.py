"""Side-by-side benchmark harness: hasten vs uvicorn vs granian (``make bench``)."""
