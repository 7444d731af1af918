#!/usr/bin/env python3
"""The scripted mailing run of the mailing-systems issue, at campaign scale, against the real
release binary over HTTP, as a new user would drive it.

  CONTACTS=100000 python3 benches/mailing-run.py     (needs: cargo build --release; python3
                                                       with `cryptography` for the signature)

It seeds CONTACTS tenants (an email and a mobile each) with mixed consents, withdrawals,
objections, restrictions, one-click unsubscribes (RFC 8058, through the links the ledger
hands out) and SMS STOPs and STARTs (through the provider webhook); then it checks that

  - the bulk NDJSON answer matches, line for line, the single checks of the same lines, and
    what the seeding means by the rules;
  - an RFC 8058 POST turns the next check for that address to not permitted, and a GET on the
    same link changes nothing;
  - STOP then START by SMS denies, then permits again, marketing texts to that number;
  - the feed replayed from 0 rebuilds the same suppression set as the checks;
  - a signed decision verifies with the public key from /v1/keys.

It asserts behaviour, not speed, but prints how long each step took. Exit status 0 means every
check held.
"""

import base64
import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

N = int(os.environ.get("CONTACTS", "100000"))
PORT = int(os.environ.get("PORT", "18383"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def target_dir():
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout
    return json.loads(meta)["target_directory"]


def email(i):
    return f"tenant{i}@example.org"


def phone(i):
    return f"+4477{i:08d}"


# What the seeding gives tenant i, and so what the rules must answer (in the rules' order:
# the objection to all marketing, restriction, objection to the purpose, then consent).
def grants_all(i): return i % 10 < 7          # newsletter on every channel
def grants_email(i): return i % 10 == 7       # newsletter by email only
def withdrew_email(i): return i % 13 == 0     # withdrew the newsletter by email
def objects_all(i): return i % 17 == 0        # objection to all direct marketing
def objects_newsletter(i): return i % 19 == 0  # objection to the newsletter
def restricted(i): return i % 23 == 0         # restriction of all processing
def sms_stop(i): return i % 29 == 0           # texted STOP
def sms_start(i): return i % 58 == 0          # ... and START afterwards
def unsubscribed(i): return i % 211 == 0      # clicked the one-click unsubscribe


def expect_email(i):
    if objects_all(i):
        return False, "marketing_objection"
    if restricted(i):
        return False, "restricted"
    if objects_newsletter(i):
        return False, "objection"
    if unsubscribed(i) or withdrew_email(i):
        return False, "consent_withdrawn"
    if grants_all(i) or grants_email(i):
        return True, "consent_granted"
    return False, "no_consent"


def expect_sms(i):
    if objects_all(i) or (sms_stop(i) and not sms_start(i)):
        return False, "marketing_objection"
    if restricted(i):
        return False, "restricted"
    if objects_newsletter(i):
        return False, "objection"
    if grants_all(i):
        return True, "consent_granted"
    return False, "no_consent"


def expect_repairs(i):
    # A contract purpose: no consent needed, not marketing; only a restriction stops it.
    return (False, "restricted") if restricted(i) else (True, "contract")


class Api:
    """Keep-alive HTTP connections, one per thread."""

    def __init__(self, key):
        self.key = key
        self.local = threading.local()

    def conn(self):
        if not hasattr(self.local, "c"):
            self.local.c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
        return self.local.c

    def call(self, method, path, body=None, ctype="application/json", key=None, raw=False):
        headers = {"Authorization": "Bearer " + (key or self.key)} if (key or self.key) else {}
        if body is not None:
            headers["content-type"] = ctype
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
        c = self.conn()
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        if raw:
            return r.status, r.getheaders(), data
        if r.status >= 300:
            raise SystemExit(f"{method} {path.split('?')[0]}: {r.status} {data[:300]!r}")
        return json.loads(data) if data else None


def check_path(line):
    return "/v1/check?" + urllib.parse.urlencode(line)


def main():
    binary = os.path.join(target_dir(), "release", "consent-ledger")
    if not os.path.exists(binary):
        raise SystemExit("build the release binary first: cargo build --release")
    # KEEP_DATA=DIR runs in DIR (empty or new) and leaves the ledger there, e.g. to time a
    # rebuild or an export of a store of this size.
    keep = os.environ.get("KEEP_DATA")
    data = keep or tempfile.mkdtemp(prefix="mailing-run-")
    server = None
    try:
        def apikey(*roles):
            args = [binary, "apikey", "create", "--data-dir", data, "--controller", "council"]
            for r in roles:
                args += ["--role", r]
            return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()

        admin = apikey("admin", "record", "check", "audit")
        webhook = apikey("sms-webhook")
        public = f"http://127.0.0.1:{PORT}"
        server = subprocess.Popen([binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{PORT}",
                                   "--public-url", public], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        api = Api(admin)
        step = time.time()

        def took(what):
            nonlocal step
            now = time.time()
            print(f"{what:<52} {now - step:6.1f} s", flush=True)
            step = now

        api.call("PUT", "/v1/purposes/newsletter", {"title": "The Voice newsletter", "basis": "consent",
                                                    "marketing": True, "channels": ["email", "sms", "post"]})
        api.call("PUT", "/v1/purposes/repairs", {"title": "Repair appointment texts", "basis": "contract",
                                                 "marketing": False, "channels": ["sms"]})

        # Seeding, as a housing system's import would: batches of events.
        staff = {"kind": "staff", "id": "import"}
        events = []
        for i in range(N):
            s = f"T-{i}"
            events.append({"type": "contact.linked", "subject": s, "contact": {"channel": "email", "address": email(i)}, "actor": staff})
            events.append({"type": "contact.linked", "subject": s, "contact": {"channel": "sms", "address": phone(i)}, "actor": staff})
            if grants_all(i):
                events.append({"type": "consent.granted", "subject": s, "purpose": "newsletter", "method": "paper_form", "actor": staff})
            if grants_email(i):
                events.append({"type": "consent.granted", "subject": s, "purpose": "newsletter", "channel": "email", "method": "web_form", "actor": {"kind": "subject"}})
            if withdrew_email(i):
                events.append({"type": "consent.withdrawn", "subject": s, "purpose": "newsletter", "channel": "email", "method": "phone_call", "actor": staff})
            if objects_all(i):
                events.append({"type": "objection.raised", "subject": s, "method": "paper_form", "actor": staff})
            if objects_newsletter(i):
                events.append({"type": "objection.raised", "subject": s, "purpose": "newsletter", "method": "paper_form", "actor": staff})
            if restricted(i):
                events.append({"type": "restriction.applied", "subject": s, "method": "paper_form", "actor": staff})
        for k in range(0, len(events), 1000):
            api.call("POST", "/v1/events/batch", events[k:k + 1000])
        took(f"seeded {N} tenants ({len(events)} events)")

        # SMS STOP (and for some START), as the provider's webhook delivers them.
        def text(i, body, sid):
            form = urllib.parse.urlencode({"From": phone(i), "To": "+447700900999", "Body": body, "MessageSid": sid})
            st, _, out = api.call("POST", "/v1/inbound/sms", form, "application/x-www-form-urlencoded", key=webhook, raw=True)
            assert st == 200 and b"<Response>" in out, (st, out[:200])

        texters = [i for i in range(N) if sms_stop(i)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: text(i, " stop ", f"SM{i}a"), texters))
            list(pool.map(lambda i: text(i, "Start", f"SM{i}b"), [i for i in texters if sms_start(i)]))
        took(f"{len(texters)} texted STOP, {sum(map(sms_start, texters))} then START")

        # One-click unsubscribes through the links the checks hand out.
        no_redirect = Api(None)

        def unsubscribe(i):
            a = api.call("GET", check_path({"email": email(i), "purpose": "newsletter", "unsubscribe": "true"}))
            assert a["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
            url = urllib.parse.urlparse(a["list_unsubscribe"].strip("<>"))
            st, headers, _ = no_redirect.call("POST", url.path, "List-Unsubscribe=One-Click",
                                              "application/x-www-form-urlencoded", raw=True)
            assert st == 200 and not any(h.lower() == "location" for h, _ in headers), st

        clickers = [i for i in range(N) if unsubscribed(i)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(unsubscribe, clickers))
        took(f"{len(clickers)} one-click unsubscribes")

        # The campaign: one NDJSON request, three lines per tenant.
        lines = []
        for i in range(N):
            lines.append({"email": email(i), "purpose": "newsletter"})
            lines.append({"phone": phone(i), "purpose": "newsletter", "channel": "sms"})
            lines.append({"phone": phone(i), "purpose": "repairs"})
        body = "".join(json.dumps(l) + "\n" for l in lines).encode()
        st, _, out = api.call("POST", "/v1/checks", body, "application/x-ndjson", raw=True)
        assert st == 200, st
        bulk = [json.loads(l) for l in out.decode().splitlines()]
        assert len(bulk) == len(lines), (len(bulk), len(lines))
        took(f"bulk NDJSON: {len(lines)} lines")
        expectations = (expect_email, expect_sms, expect_repairs)
        wrong = [(k, bulk[k]) for k in range(len(lines))
                 if (bulk[k].get("permitted"), bulk[k].get("reason")) != expectations[k % 3](k // 3)]
        assert not wrong, f"{len(wrong)} bulk answers differ from the rules, first: line {wrong[0][0]}: {wrong[0][1]}"
        permitted = sum(1 for a in bulk if a["permitted"])
        print(f"  every answer as the rules say; {permitted} of {len(bulk)} permitted")

        # Line for line the same as single checks.
        def single(k):
            a = api.call("GET", check_path(lines[k]))
            b = bulk[k]
            return k if (a["permitted"], a["reason"], a["decided_by"], a["basis"]) != \
                (b["permitted"], b["reason"], b["decided_by"], b["basis"]) else None

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            differ = [k for k in pool.map(single, range(len(lines)), chunksize=256) if k is not None]
        assert not differ, f"{len(differ)} single checks differ from the bulk answer, first line {differ[0]}"
        took(f"{len(lines)} single checks match the bulk answer")

        # RFC 8058: GET changes nothing, POST withdraws.
        i = next(i for i in range(N) if expect_email(i)[0])
        q = {"email": email(i), "purpose": "newsletter"}
        a = api.call("GET", check_path({**q, "unsubscribe": "true"}))
        link = urllib.parse.urlparse(a["list_unsubscribe"].strip("<>")).path
        size = a["log_size"]
        st, _, page = no_redirect.call("GET", link, raw=True)
        assert st == 200 and b"<form" in page
        after_get = api.call("GET", check_path(q))
        assert after_get["permitted"] and after_get["log_size"] == size, "a GET on the link changed something"
        st, _, _ = no_redirect.call("POST", link, "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded", raw=True)
        assert st == 200
        after_post = api.call("GET", check_path(q))
        assert (after_post["permitted"], after_post["reason"]) == (False, "consent_withdrawn"), after_post
        took("RFC 8058: GET changes nothing, POST withdraws")

        # STOP, then START, by SMS.
        i = next(i for i in reversed(range(N)) if expect_sms(i)[0] and expect_email(i)[0])
        q = {"phone": phone(i), "purpose": "newsletter", "channel": "sms"}
        text(i, "STOP", "SM-final-1")
        assert api.call("GET", check_path(q))["reason"] == "marketing_objection"
        assert api.call("GET", check_path({"phone": phone(i), "purpose": "repairs"}))["permitted"], "service texts still go"
        assert api.call("GET", check_path({"email": email(i), "purpose": "newsletter"}))["permitted"], "email untouched"
        text(i, "START", "SM-final-2")
        assert api.call("GET", check_path(q))["permitted"]
        took("SMS STOP then START")

        # The feed replayed from 0 rebuilds the suppression list of the newsletter by email.
        subject_of = {}  # blind index -> tenant number
        state = {}       # tenant -> what the feed said
        after = 0
        count = 0
        while True:
            page = api.call("GET", f"/v1/feed?after={after}&limit=1000")
            for r in page["events"]:
                e = r["event"]
                count += 1
                index = (e.get("contact") or {}).get("index")
                if e["type"] == "contact.linked":
                    subject_of[index] = int(e["subject"][2:])
                    continue
                who = int(e["subject"][2:]) if e.get("subject") else subject_of.get(index)
                if who is None:
                    continue
                st_ = state.setdefault(who, {"consent": None, "objection": set(), "restricted": False, "stopped": False})
                on_email = e.get("channel") in (None, "email")
                if e["type"] in ("consent.granted", "consent.withdrawn") and on_email:
                    st_["consent"] = e["type"]
                elif e["type"] == "objection.raised" and e.get("channel") in (None, "email"):
                    st_["objection"].add(e.get("purpose"))
                elif e["type"] == "restriction.applied":
                    st_["restricted"] = True
            after = page["next_after"]
            if not page["has_more"]:
                break
        feed_suppressed = {i for i in range(N) if (lambda s: s is None or s["consent"] != "consent.granted"
                                                   or s["objection"] or s["restricted"])(state.get(i))}
        # The checks now (one more withdrawal was made above).
        now = api.call("POST", "/v1/checks", "".join(json.dumps({"email": email(i), "purpose": "newsletter"}) + "\n"
                                                     for i in range(N)).encode(), "application/x-ndjson", raw=True)[2]
        check_suppressed = {i for i, l in enumerate(now.decode().splitlines()) if not json.loads(l)["permitted"]}
        assert feed_suppressed == check_suppressed, \
            f"feed and checks disagree on {len(feed_suppressed ^ check_suppressed)} tenants"
        took(f"feed replayed ({count} events): {len(feed_suppressed)} suppressed, same as the checks")

        # A signed decision verifies with the published key.
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.exceptions import InvalidSignature
        a = api.call("GET", check_path({"email": email(1), "purpose": "newsletter", "signed": "true"}))
        signed = a["signed_decision"]
        keys = {k["key_id"]: k["public_key"] for k in api.call("GET", "/v1/keys")["keys"]}
        pk = Ed25519PublicKey.from_public_bytes(base64.b64decode(keys[signed["key_id"]]))
        # RFC 8785 for a document of strings, integers and booleans: sorted keys, no spaces.
        jcs = lambda d: json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        pk.verify(base64.b64decode(signed["signature"]), jcs(signed["decision"]))
        forged = dict(signed["decision"], permitted=not signed["decision"]["permitted"])
        try:
            pk.verify(base64.b64decode(signed["signature"]), jcs(forged))
            raise SystemExit("a forged decision verified")
        except InvalidSignature:
            pass
        assert signed["decision"]["permitted"] == a["permitted"]
        took("signed decision verifies with /v1/keys (a forged one does not)")
        print("mailing run: every check held")
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        if not keep:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
