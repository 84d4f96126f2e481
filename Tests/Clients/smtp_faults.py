"""A plain-text SMTP server that misbehaves on purpose, for the e-mail trigger tests.

Usage: smtp_faults.py DIRECTORY [inject-after-starttls | echo-auth]
Writes DIRECTORY/port once listening and DIRECTORY/messages.jsonl (one {"rcpt": …, "data": …}
per message it accepts). With inject-after-starttls it offers STARTTLS (DIRECTORY/cert.pem is
its certificate) and sends, in the same write as its 220, the answers to the commands a client
would send next, in clear: a client must not read them as answers given over TLS. With echo-auth
it offers AUTH and refuses every login with a 535 that repeats the command it was sent, the
credentials included. Otherwise the recipient's local part picks the fault:
  drop-*    the first time: the connection is closed as the message body starts, before its
            final "."; later: accepted.
  nul-*     RCPT is refused with 550 and a NUL byte in the reply text.
  anything else: accepted.
Runs until killed.
"""
import json
import os
import socketserver
import ssl
import sys
import threading

directory = sys.argv[1]
inject = len(sys.argv) > 2 and sys.argv[2] == "inject-after-starttls"
echo_auth = len(sys.argv) > 2 and sys.argv[2] == "echo-auth"
tls = None
if inject:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from smtp_sink import make_certificate

    tls = make_certificate(directory)
dropped = set()
lock = threading.Lock()


class Session(socketserver.StreamRequestHandler):
    def send(self, line):
        self.wfile.write(line + b"\r\n")
        self.wfile.flush()

    def handle(self):
        self.send(b"220 faults ESMTP")
        rcpt = None
        while True:
            line = self.rfile.readline()
            if not line:
                return
            command = line.strip().upper()
            if command.startswith(b"EHLO") or command.startswith(b"HELO"):
                self.send(b"250-faults")
                if inject and not isinstance(self.connection, ssl.SSLSocket):
                    self.send(b"250-STARTTLS")
                if echo_auth:
                    self.send(b"250-AUTH PLAIN LOGIN")
                self.send(b"250 8BITMIME")
            elif command == b"STARTTLS" and inject:
                self.wfile.write(b"220 go ahead\r\n250-faults\r\n250 8BITMIME\r\n250 ok\r\n250 ok\r\n354 go on\r\n")
                self.wfile.flush()
                self.connection = tls.wrap_socket(self.connection, server_side=True)
                self.rfile = self.connection.makefile("rb")
                self.wfile = self.connection.makefile("wb")
            elif command.startswith(b"AUTH") and echo_auth:
                self.send(b"535 5.7.8 refused: " + line.strip())
            elif command.startswith(b"MAIL FROM"):
                self.send(b"250 ok")
            elif command.startswith(b"RCPT TO"):
                rcpt = line.strip()[8:].strip(b"<>").decode()
                if rcpt.startswith("nul-"):
                    self.send(b"550 5.1.1 no\x00such user")
                    rcpt = None
                else:
                    self.send(b"250 ok")
            elif command == b"DATA":
                self.send(b"354 go on")
                with lock:
                    drop = rcpt.startswith("drop-") and rcpt not in dropped
                    if drop:
                        dropped.add(rcpt)
                if drop:
                    self.rfile.readline()
                    return  # closed before the final "."
                data = []
                while True:
                    body = self.rfile.readline()
                    if not body or body == b".\r\n":
                        break
                    data.append(body.decode("utf-8", "replace"))
                if not body:
                    return
                with lock, open(os.path.join(directory, "messages.jsonl"), "a") as out:
                    out.write(json.dumps({"rcpt": rcpt, "data": "".join(data)}) + "\n")
                self.send(b"250 stored")
            elif command == b"QUIT":
                self.send(b"221 bye")
                return
            elif command == b"RSET" or command == b"NOOP":
                self.send(b"250 ok")
            else:
                self.send(b"502 not here")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


server = Server(("127.0.0.1", 0), Session)
with open(os.path.join(directory, "port.tmp"), "w") as out:
    out.write(str(server.server_address[1]))
os.rename(os.path.join(directory, "port.tmp"), os.path.join(directory, "port"))
server.serve_forever()
