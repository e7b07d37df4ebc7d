"""A small HTTPS endpoint for the system test's network faults (guest.sh, section 6).

    python3 https-endpoint.py ADDRESS PORT CERT KEY READY_FILE

Serves TLS on ADDRESS:PORT with CERT/KEY and answers every HEAD or GET with 200 and a Date
header, which is all smartpos-netd's endpoint probe asks of a server. READY_FILE is written
once the socket listens. It runs inside the test's network namespace, on the far side of the
veth pair whose delay, loss and link state the test changes.
"""

import http.server
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, body):
        self.send_response(200)  # adds Server and Date
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body

    def do_HEAD(self):
        self.answer(b"ok\n")

    def do_GET(self):
        self.wfile.write(self.answer(b"ok\n"))

    def log_message(self, format, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def finish_request(self, request, client_address):
        # The handshake in the connection's own thread, with a time limit: a client that
        # gave up mid-handshake (lost packets, the link taken down) must not stall accept().
        request.settimeout(20)
        try:
            tls = self.tls.wrap_socket(request, server_side=True)
        except OSError:
            request.close()
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def handle_error(self, request, client_address):
        # A client that went away mid-answer is what this test does on purpose.
        pass


def main():
    address, port, cert, key, ready = sys.argv[1:6]
    server = Server((address, int(port)), Handler)
    server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.tls.minimum_version = ssl.TLSVersion.TLSv1_2
    server.tls.load_cert_chain(cert, key)
    with open(ready, "w") as f:
        f.write(f"{address}:{port}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
