"""An SMTP server for the tests (aiosmtpd): listens on 127.0.0.1:PORT and writes each message it
receives to OUT_DIR as NNNN.eml (the raw message), NNNN.partK (each leaf MIME part, decoded)
and, last, NNNN.json (envelope, headers, parts, the authenticated login), so a test that sees the
JSON sees the whole message. With USER and PASSWORD it requires AUTH (over plain TCP: the test
checks credentials reach the server, not TLS). With SINK_HOLD_SECONDS=N in the environment it
holds each message N seconds after the client's final "." before accepting it, first writing
NNNN.held so a test knows a message is in flight; a client that disconnects meanwhile never gets
its 250, and (aiosmtpd cancels the handler) the message is not kept, as RFC 5321 asks.

usage: sink.py PORT OUT_DIR [USER PASSWORD]
"""
import asyncio
import email
import json
import os
import sys
from email import policy

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Writer:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.out_dir, f"{self.count:04d}")
        hold = float(os.environ.get("SINK_HOLD_SECONDS", "0"))
        if hold > 0:
            open(base + ".held", "w").close()
            await asyncio.sleep(hold)
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        parts = []
        for index, part in enumerate(message.walk()):
            entry = {
                "content_type": part.get_content_type(),
                "charset": part.get_content_charset(),
                "disposition": part.get_content_disposition(),
                "filename": part.get_filename(),
                "content_id": (part.get("Content-ID") or "").strip("<>") or None,
            }
            if not part.is_multipart():
                path = f"{base}.part{index}"
                with open(path, "wb") as f:
                    f.write(part.get_payload(decode=True) or b"")
                entry["path"] = path
            parts.append(entry)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "login": login,
            "size": len(envelope.original_content or envelope.content),
            "parts": parts,
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(record, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 OK"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return check


async def main():
    port, out_dir = int(sys.argv[1]), sys.argv[2]
    handler = Writer(out_dir)
    if len(sys.argv) > 4:
        check = authenticator(sys.argv[3], sys.argv[4])

        def factory():
            return SMTP(handler, authenticator=check, auth_required=True, auth_require_tls=False)
    else:

        def factory():
            return SMTP(handler)

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
