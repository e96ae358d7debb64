"""The least an HTTP server can do for /_ping: answer "OK" on a kept-open unix socket connection.

Run as its own process (``python -m bench.pingserver SOCKET``) so that docker-py's round trip to it
is the API floor: the client's own cost plus one kernel round trip, with no daemon behind it."""

import http.server
import socketserver
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a Docker daemon answers

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    with socketserver.UnixStreamServer(sys.argv[1], Handler) as server:
        server.serve_forever()
