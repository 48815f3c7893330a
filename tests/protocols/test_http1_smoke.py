from tests.harness import request, run_server


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, world!"})


def test_small_response_has_length_date_and_server_headers():
    with run_server(hello) as server, server.connect() as client:
        client.send(request())
        response = client.read_response()
        assert response.status == 200
        assert response.body == b"Hello, world!"
        assert response.header("content-length") == "13"
        assert response.header("server") == "hasten"
        assert response.header("date")
