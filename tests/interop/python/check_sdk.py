"""Drive a running starfish-rs server with the official Python SDK.

Usage: check_sdk.py BASE_URL CAP_JSON_FILE [CA_FILE]
BASE_URL is the server's mount (http://127.0.0.1:PORT/v1); CAP_JSON_FILE holds
{"cap": <root device cap>, "priv": <seed hex>, "uid": <user id>}.
With CA_FILE (an https:// BASE_URL), every client verifies the server against
that PEM CA bundle: the SDK's `client=` option with an httpx client whose
`verify` is an SSL context loaded from CA_FILE.
Every expectation comes from the protocol spec (wire.md, client.md).
Exits non-zero on the first failed check.
"""
import asyncio
import json
import ssl
import sys

import httpx

from starfish_protocol.hash import compute_hash
from starfish_sdk import ConflictError, StarfishClient, StarfishHttpError, SyncManager

checks = 0
ca_file = None


def client(base, **kw):
    """A StarfishClient; over https it trusts only the CA bundle in ca_file."""
    if ca_file:
        kw["client"] = httpx.AsyncClient(timeout=30.0, verify=ssl.create_default_context(cafile=ca_file))
    return StarfishClient(base, **kw)


def check(cond, what):
    global checks
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1


class Caps:
    def __init__(self, cap, priv):
        self.cap, self.priv = cap, priv

    async def get_cap(self):
        return {"cap": self.cap, "dev_ed_priv_hex": self.priv}


async def main(base, cap_file):
    cred = json.load(open(cap_file))
    uid = cred["uid"]
    check(base.startswith("https://") == bool(ca_file), "https base URL exactly when a CA bundle is given")
    if ca_file:
        # Without the CA bundle the SDK's default trust store refuses the
        # throw-away CA: the certificate really is verified.
        try:
            async with StarfishClient(base) as c:
                await c.pull("/pull/public/notes/py-untrusted")
            check(False, "an unknown issuer must be refused")
        except httpx.ConnectError as e:
            check("CERTIFICATE_VERIFY_FAILED" in str(e), "unknown issuer refused by the default trust store")
    async with client(base) as c:
        r = await c.pull("/pull/public/notes/py-1")
        check(r.data == {} and r.hash == "", "missing document pulls as empty (wire.md 4.2)")
        doc = {"msg": "h\u00e9llo", "n": [1, 2.5, 10**21], "nested": {"b": 1, "a": None}}
        p = await c.push("/push/public/notes/py-1", doc, None)
        check(p.hash == compute_hash(doc), "push hash is sha256(stableStringify(data))")
        r = await c.pull("/pull/public/notes/py-1")
        check(r.hash == p.hash and r.data == doc, "pull returns the pushed document")
        try:
            await c.push("/push/public/notes/py-1", {"x": 1}, "stale")
            check(False, "stale baseHash must conflict")
        except ConflictError as e:
            check("hash_mismatch" in str(e), "409 hash_mismatch surfaces as ConflictError")
        try:
            await c.push("/push/public/notes/py-1", {"x": 1}, None)
            check(False, "baseHash null on an existing doc must conflict")
        except ConflictError:
            check(True, "create-only push conflicts when the doc exists")
        res = await c.batch_pull(["notes", "settings", "nope"], params={"notes": [{"id": "py-1"}, {"id": "py-2"}]})
        notes = res["collections"]["notes"]
        check(notes[0]["hash"] == p.hash and notes[1]["hash"] == "", "batch entries in param-set order")
        check(res["collections"]["settings"] == [{"error": "Missing required path parameter"}], "anonymous {identity} entry")
        check(res["collections"]["nope"] == [{"error": "Collection not found"}], "unknown collection entry")
        try:
            await c.pull(f"/pull/users/{uid}/settings")
            check(False, "anonymous pull of a self collection must fail")
        except StarfishHttpError as e:
            check(e.status == 403, "anonymous caller on a self collection is 403")

    caps = Caps(cred["cap"], cred["priv"])
    async with client(base, cap_provider=caps) as c:
        p = await c.push(f"/push/users/{uid}/settings", {"theme": "dark"}, None)
        check(p.hash == compute_hash({"theme": "dark"}), "signed push to own document")
        r = await c.pull(f"/pull/users/{uid}/settings")
        check(r.data == {"theme": "dark"}, "signed pull of own document")
        try:
            await c.pull("/pull/users/someoneelse/settings")
            check(False, "another identity must be refused")
        except StarfishHttpError as e:
            check(e.status == 403, "another identity's document is 403")
        res = await c.batch_pull(["settings"])
        check(res["collections"]["settings"][0]["data"] == {"theme": "dark"}, "batch auto-fills {identity}")
        sm = SyncManager(c, f"/pull/users/{uid}/settings", f"/push/users/{uid}/settings")
        pulled = await sm.pull()
        check(pulled.data == {"theme": "dark"}, "SyncManager pull")
        await sm.push({"theme": "light"})
        r = await c.pull(f"/pull/users/{uid}/settings")
        check(r.data == {"theme": "light"}, "SyncManager push")

    origin = base.rsplit("/v1", 1)[0]
    async with client(origin, cap_provider=caps, namespace="demo") as c:
        p = await c.push(f"/push/demo/users/{uid}/inbox", {"m": 1}, None)
        check(p.hash == compute_hash({"m": 1}), "namespaced signed push")
        r = await c.pull(f"/pull/demo/users/{uid}/inbox")
        check(r.data == {"m": 1}, "namespaced signed pull")
    print(f"python-sdk{'-https' if ca_file else ''}: {checks} passed, 0 failed")


if __name__ == "__main__":
    if len(sys.argv) > 3:
        ca_file = sys.argv[3]
    asyncio.run(main(sys.argv[1], sys.argv[2]))
