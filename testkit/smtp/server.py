#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for vigil-notify's email tests.

Listens on 127.0.0.1 on a free port and prints one JSON line `{"port": N}` on stdout once it
accepts connections. Every message it accepts is written to OUT_DIR as `<n>.json`:
`{"mail_from", "rcpt_tos", "data" (as received), "subject" and "text" (decoded), "tls",
"auth_user"}`, written to a temporary name first and then renamed, so a reader never sees
half a file.

--cert/--key: offer STARTTLS with this certificate and refuse mail before STARTTLS.
--user/--password-file: require AUTH (only after STARTTLS) with these credentials.
Without --cert the server offers no STARTTLS at all, which a client that requires it must
refuse to talk to.

It stops when its standard input is closed, so it never outlives the test that started it.
"""

import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Saver:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        auth_user = None
        if isinstance(session.auth_data, LoginPassword):
            auth_user = session.auth_data.login.decode("utf-8", "replace")
        raw = envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        body = parsed.get_body(("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": raw.decode("utf-8", "replace"),
            "subject": str(parsed["subject"]),
            "text": body.get_content() if body is not None else None,
            "tls": session.ssl is not None,
            "auth_user": auth_user,
        }
        tmp = os.path.join(self.out_dir, f".{self.count}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.out_dir, f"{self.count}.json"))
        return "250 OK"


def main():
    # aiosmtpd warns about its own use of a deprecated attribute on every AUTH, and logs a
    # traceback for every refused TLS handshake, which some tests cause on purpose.
    # SMTP_SERVER_DEBUG=1 shows them.
    if not os.environ.get("SMTP_SERVER_DEBUG"):
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    p = argparse.ArgumentParser()
    p.add_argument("--out-dir", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password-file")
    args = p.parse_args()

    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)

    password = None
    if args.password_file:
        with open(args.password_file, "rb") as f:
            password = f.read().strip()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and args.user is not None
            and auth_data.login.decode("utf-8", "replace") == args.user
            and auth_data.password == password
        )
        # handled=False: aiosmtpd answers 535 itself (its default would answer nothing).
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    handler = Saver(args.out_dir)

    def factory():
        return SMTP(
            handler,
            hostname="localhost",
            tls_context=tls,
            require_starttls=tls is not None,
            auth_required=password is not None,
            auth_require_tls=True,
            authenticator=authenticator if password is not None else None,
        )

    async def run():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, host="127.0.0.1", port=0)
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        # Standard input closing (the test ended or was killed) stops the server.
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
