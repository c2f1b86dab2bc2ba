#!/usr/bin/env python3
"""Key material and tokens for bench/auth.sh: an Ed25519 key (public half
as PEM for the gateway), and N distinct EdDSA JWTs, one per line."""
import base64, json, sys, time
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

out_dir, count = sys.argv[1], int(sys.argv[2])
key = Ed25519PrivateKey.generate()
with open(f"{out_dir}/issuer.pub.pem", "wb") as f:
    f.write(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
header = b64(json.dumps({"alg": "EdDSA", "typ": "JWT"}).encode())
now = int(time.time())
with open(f"{out_dir}/tokens.txt", "w") as f:
    for i in range(count):
        claims = {"iss": "https://issuer.bench", "aud": "bench", "sub": f"user-{i}",
                  "scope": "orders:read", "iat": now, "exp": now + 3600}
        signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
        sig = key.sign(signing_input.encode())
        f.write(f"{signing_input}.{b64(sig)}\n")
