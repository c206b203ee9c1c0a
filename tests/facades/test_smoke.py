from .drivers import Behaviour, register


def test_unary_ok(client):
    path = register(Behaviour("unary_unary", [("send_initial_metadata", (("a", "1"),)),
                                              ("set_trailing_metadata", (("b", "2"),)), ("return", b"pong")]))
    out = client.unary(path, b"ping", timeout=2)
    assert out.response == b"pong", out
    assert out.code == "OK"
    assert out.initial_metadata == (("a", "1"),)
    assert out.trailing_metadata == (("b", "2"),)


def test_server_ok(server, observer):
    b = Behaviour("stream_stream", [("read_all",), ("yield", b"x"), ("yield", b"y")])
    path = register(b)
    out = observer.stream_stream(path, [b"1", b"2"], timeout=2)
    assert out.responses == [b"x", b"y"], out
    assert b.requests == [b"1", b"2"]
