"""HTTP/2: the frames, HPACK, the connection state machine, the asyncio connection, the
stream, request fields and limits."""
