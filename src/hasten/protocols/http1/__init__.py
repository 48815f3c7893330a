"""HTTP/1.1: the connection (httptools), the request cycle, and the request checks."""
