#!/usr/bin/python3
"""Generate testdata/vectors.json: password hashes made by passlib (the
library Mailu uses) and, where it can, by OpenSSL and libxcrypt (independent
implementations). Not run by the tests; rerun by hand:

    /usr/bin/python3 testdata/gen_vectors.py > testdata/vectors.json

Every entry: scheme, hash, password, and the maker.
"""
import json
import subprocess
import sys
import warnings

warnings.simplefilter("ignore")

from passlib import hash as h  # noqa: E402

PASSWORDS = [
    "password",
    "correct horse battery staple",
    "pässwörd ✓ 密码",                       # non-ASCII (UTF-8)
    "x" * 73,                                # just over bcrypt's 72 bytes
    "0123456789" * 10 + "tail",              # 104 bytes
    "ä" * 40,                                # 80 bytes of UTF-8
    "p@$$w0rd with spaces\tand\\slashes'\"",
    "ab",
]

out = []


def add(scheme, handler, maker="passlib", passwords=PASSWORDS):
    for pw in passwords:
        hs = handler.hash(pw)
        assert handler.verify(pw, hs)
        out.append({"scheme": scheme, "hash": hs, "password": pw, "maker": maker})


# bcrypt_sha256 v2 (passlib >= 1.7.3, Mailu's default)
add("bcrypt_sha256", h.bcrypt_sha256.using(rounds=4))
add("bcrypt_sha256", h.bcrypt_sha256.using(rounds=5), passwords=PASSWORDS[:3])
add("bcrypt_sha256", h.bcrypt_sha256.using(rounds=6), passwords=PASSWORDS[2:4])
# bcrypt_sha256 v1 (older Mailu installs), 2a and 2b
add("bcrypt_sha256_v1", h.bcrypt_sha256.using(version=1, rounds=4))
add("bcrypt_sha256_v1", h.bcrypt_sha256.using(version=1, ident="2a", rounds=5), passwords=PASSWORDS[:4])
# plain bcrypt, three idents
add("bcrypt", h.bcrypt.using(rounds=4))
add("bcrypt", h.bcrypt.using(ident="2a", rounds=5), passwords=PASSWORDS[:4])
add("bcrypt", h.bcrypt.using(ident="2y", rounds=4), passwords=PASSWORDS[:4])
# sha512_crypt / sha256_crypt: explicit and implicit (5000) rounds
add("sha512_crypt", h.sha512_crypt.using(rounds=1000))
add("sha512_crypt", h.sha512_crypt.using(rounds=5000), passwords=PASSWORDS[:3])  # implicit rounds
add("sha512_crypt", h.sha512_crypt.using(rounds=12345, salt_size=8), passwords=PASSWORDS[2:5])
add("sha512_crypt", h.sha512_crypt.using(rounds=1000, salt_size=0), passwords=PASSWORDS[:2])
add("sha256_crypt", h.sha256_crypt.using(rounds=1000))
add("sha256_crypt", h.sha256_crypt.using(rounds=5000), passwords=PASSWORDS[:3])
add("sha256_crypt", h.sha256_crypt.using(rounds=5001, salt_size=3), passwords=PASSWORDS[2:5])
# md5_crypt and Apache's variant
add("md5_crypt", h.md5_crypt)
add("md5_crypt", h.md5_crypt.using(salt_size=2), passwords=PASSWORDS[:3])
add("apr_md5_crypt", h.apr_md5_crypt, passwords=PASSWORDS[:4])
# pbkdf2 family (passlib's adapted base64)
add("pbkdf2_sha256", h.pbkdf2_sha256.using(rounds=1))
add("pbkdf2_sha256", h.pbkdf2_sha256.using(rounds=1000, salt_size=4), passwords=PASSWORDS[:4])
add("pbkdf2_sha256", h.pbkdf2_sha256, passwords=PASSWORDS[:2])  # passlib default rounds
add("pbkdf2_sha512", h.pbkdf2_sha512.using(rounds=1000), passwords=PASSWORDS[:4])
add("pbkdf2_sha1", h.pbkdf2_sha1.using(rounds=1000), passwords=PASSWORDS[:4])

# Independent makers: OpenSSL (md5/sha256/sha512 crypt) and libxcrypt via the
# crypt module (bcrypt $2b$, sha-crypt with rounds).
for flag, scheme in (("-1", "md5_crypt"), ("-5", "sha256_crypt"), ("-6", "sha512_crypt")):
    for pw in PASSWORDS[:4]:
        hs = subprocess.run(["openssl", "passwd", flag, "-stdin"], input=pw.encode(),
                            capture_output=True, check=True).stdout.decode().strip()
        assert getattr(h, scheme).verify(pw, hs), (scheme, pw, hs)
        out.append({"scheme": scheme, "hash": hs, "password": pw, "maker": "openssl"})
try:
    import crypt
except ImportError:  # Python >= 3.13
    crypt = None
if crypt is not None:
    for setting, scheme in (("$2b$05$", "bcrypt"), ("$6$rounds=2000$", "sha512_crypt"),
                            ("$5$rounds=2000$", "sha256_crypt")):
        for pw in PASSWORDS[:4]:
            salt = crypt.mksalt(getattr(crypt, {"bcrypt": "METHOD_BLOWFISH",
                                                "sha512_crypt": "METHOD_SHA512",
                                                "sha256_crypt": "METHOD_SHA256"}[scheme]),
                                rounds=32 if scheme == "bcrypt" else 2000)
            hs = crypt.crypt(pw, salt)
            if not hs or not getattr(h, scheme).verify(pw, hs):
                continue
            out.append({"scheme": scheme, "hash": hs, "password": pw, "maker": "libxcrypt"})

# App tokens as Mailu stores them (models.py Token): pbkdf2_sha256 1 round;
# legacy sha256_crypt 1000 rounds.
TOKENS = ["0123456789abcdef0123456789abcdef", "deadbeefcafebabe00112233445566ff"]
add("token_pbkdf2_sha256", h.pbkdf2_sha256.using(rounds=1), passwords=TOKENS)
add("token_sha256_crypt", h.sha256_crypt.using(rounds=1000), passwords=TOKENS)

json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
sys.stdout.write("\n")
