"""A tiny misbehaving HTTP server for client tests (run as a script; prints its port).

Modes:
  cut FILE      answer every GET with FILE's length in Content-Length, send a tenth of it,
                then SIGKILL itself (a server killed mid-transfer)
  garbage FILE  answer 200 with FILE's bytes with every byte flipped
  flaky FILE    answer the first GET with 503 (an HTML page, like a proxy), then FILE
"""
import http.server
import os
import signal
import sys

MODE, BODY = sys.argv[1], open(sys.argv[2], "rb").read()
SEEN = {"n": 0}


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        SEEN["n"] += 1
        if MODE == "flaky" and SEEN["n"] == 1:
            page = b"<html>503 Service Unavailable</html>"
            self.send_response(503)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        body = bytes(b ^ 0xFF for b in BODY) if MODE == "garbage" else BODY
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if MODE == "cut":
            self.wfile.write(body[: len(body) // 10])
            self.wfile.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        self.wfile.write(body)


srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
