-- POST a 4 KiB body to every request; the app echoes it back.
wrk.method = "POST"
wrk.body = string.rep("x", 4096)
wrk.headers["Content-Type"] = "application/octet-stream"
