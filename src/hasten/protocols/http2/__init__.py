"""HTTP/2: the connection (h2), the stream, request fields and limits."""
