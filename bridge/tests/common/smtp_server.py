"""A real SMTP server for the tests (aiosmtpd), writing what it accepts
into a Maildir the tests read.

    python smtp_server.py --port PORT --maildir DIR
        [--tls-cert CERT --tls-key KEY --mode starttls|tls]
        [--user USER --password PASSWORD]

Recipients whose local part starts with `refuse` are refused with 550 (a
permanent failure), those starting with `busy` with 451 (a transient one),
so a test chooses the server's answer through the address it sends to.
With `--mode starttls` STARTTLS is required before anything else; with
`--mode tls` the connection is TLS from the first byte. With `--user`,
AUTH is required (and only offered over TLS). Prints `ready` once it
accepts connections, then serves until SIGTERM or SIGINT.
"""

import argparse
import mailbox
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class MaildirHandler:
    def __init__(self, path):
        self.maildir = mailbox.Maildir(path, create=True)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("refuse"):
            return "550 5.1.1 Mailbox unavailable"
        if local.startswith("busy"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        # Maildir delivery is atomic: written under tmp/, then renamed into new/.
        self.maildir.add(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)
        return AuthResult(success=False, handled=False)

    return check


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()

    kwargs = {}
    if args.mode != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.mode == "tls":
            kwargs["ssl_context"] = context
        else:
            kwargs["tls_context"] = context
            kwargs["require_starttls"] = True
    if args.user:
        kwargs["authenticator"] = authenticator(args.user, args.password or "")
        kwargs["auth_required"] = True
        kwargs["auth_require_tls"] = args.mode != "plain"

    controller = Controller(
        MaildirHandler(args.maildir), hostname="127.0.0.1", port=args.port, **kwargs
    )
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
