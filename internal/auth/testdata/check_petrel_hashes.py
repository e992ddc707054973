#!/usr/bin/python3
"""Check that passlib (what Mailu runs) accepts the bcrypt_sha256 hashes
Petrel's HashPassword wrote into testdata/petrel_hashes.json, and rejects
them for a wrong password. Not run by the tests; run by hand after

    go test ./internal/auth -run TestPetrelHashes -write-petrel-hashes
    /usr/bin/python3 testdata/check_petrel_hashes.py
"""
import json
import os
import sys

from passlib.hash import bcrypt_sha256
from passlib.context import CryptContext

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "petrel_hashes.json"), encoding="utf-8") as f:
    hashes = json.load(f)

# Mailu's context: bcrypt_sha256 by default, rounds = CREDENTIAL_ROUNDS.
failed = 0
for entry in hashes:
    pw, h, rounds = entry["password"], entry["hash"], entry["rounds"]
    ctx = CryptContext(schemes=["bcrypt_sha256", "sha512_crypt"], default="bcrypt_sha256",
                       bcrypt_sha256__rounds=rounds)
    ok = bcrypt_sha256.verify(pw, h) and not bcrypt_sha256.verify(pw + "!", h)
    ok = ok and ctx.identify(h) == "bcrypt_sha256" and not ctx.needs_update(h)
    ok = ok and bcrypt_sha256.from_string(h).rounds == rounds
    print("ok  " if ok else "FAIL", h)
    failed += not ok
print(f"{len(hashes) - failed}/{len(hashes)} verified by passlib")
sys.exit(1 if failed else 0)
