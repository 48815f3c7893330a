"""WebSockets: the HTTP/1.1 handshake and channel, the connection (frames <-> ASGI), and
the HTTP/2 extended CONNECT channel."""
