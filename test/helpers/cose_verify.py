"""An independent COSE_Sign1 (RFC 9052 section 4.2) check, with cbor2 and cryptography only.

Run by test/unit/cose-python.test.ts with Debian's /usr/bin/python3 (python3-cbor2,
python3-cryptography). One argument: a JSON request. One line of JSON out.

  {"op": "verify", "message": hex, "publicKeyPem": PEM, "externalAad": hex}
    -> {"valid": bool, "alg": int, "kid": hex, "claims": {...}}
       claims: the payload decoded as CBOR, map labels as text, byte strings as {"bstr": hex}
  {"op": "sign", "alg": "ES256" | "EdDSA", "kid": hex, "payload": hex,
   "privateKeyPem": PEM, "externalAad": hex}
    -> {"message": hex}: a tagged COSE_Sign1, protected {1: alg}, unprotected {4: kid}
"""

import json
import sys

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

COSE_SIGN1_TAG = 18
ALGS = {"ES256": -7, "EdDSA": -8}


def sig_structure(protected, external_aad, payload):
    """RFC 9052 section 4.4: Sig_structure for a COSE_Sign1."""
    return cbor2.dumps(["Signature1", protected, external_aad, payload])


def jsonable(value):
    if isinstance(value, (bytes, bytearray)):
        return {"bstr": bytes(value).hex()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, cbor2.CBORTag):
        return {"tag": value.tag, "value": jsonable(value.value)}
    return value


def verify(request):
    item = cbor2.loads(bytes.fromhex(request["message"]))
    if not isinstance(item, cbor2.CBORTag) or item.tag != COSE_SIGN1_TAG:
        raise ValueError("not a COSE_Sign1 tagged 18")
    if not isinstance(item.value, list) or len(item.value) != 4:
        raise ValueError("a COSE_Sign1 is an array of 4")
    protected, unprotected, payload, signature = item.value
    header = cbor2.loads(protected)
    alg = header[1]
    key = serialization.load_pem_public_key(request["publicKeyPem"].encode())
    data = sig_structure(protected, bytes.fromhex(request.get("externalAad", "")), payload)
    try:
        if alg == ALGS["ES256"]:
            if not isinstance(key, ec.EllipticCurvePublicKey) or len(signature) != 64:
                raise InvalidSignature()
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            key.verify(der, data, ec.ECDSA(hashes.SHA256()))
        elif alg == ALGS["EdDSA"]:
            if not isinstance(key, ed25519.Ed25519PublicKey):
                raise InvalidSignature()
            key.verify(signature, data)
        else:
            raise ValueError(f"alg {alg!r}")
        valid = True
    except InvalidSignature:
        valid = False
    return {"valid": valid, "alg": alg, "kid": unprotected[4].hex(), "claims": jsonable(cbor2.loads(payload))}


def sign(request):
    alg = request["alg"]
    key = serialization.load_pem_private_key(request["privateKeyPem"].encode(), password=None)
    protected = cbor2.dumps({1: ALGS[alg]})
    payload = bytes.fromhex(request["payload"])
    data = sig_structure(protected, bytes.fromhex(request.get("externalAad", "")), payload)
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = key.sign(data)
    message = cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {4: bytes.fromhex(request["kid"])}, payload, signature]))
    return {"message": message.hex()}


def main():
    request = json.loads(sys.argv[1])
    result = {"verify": verify, "sign": sign}[request["op"]](request)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
