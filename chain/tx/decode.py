"""Decodes TxRaw bytes into what the ante handler and the router need, checking shape only.

Every layer must be canonically encoded (chain/tx/canonical.py), so the decoded tx is the only
reading of its bytes, and every integer that later feeds arithmetic or an int64 response field
is range-checked here. Signatures are later verified over the *received* body and auth-info
bytes, which are then also the canonical ones.
"""

import hashlib
from dataclasses import dataclass

from cosmpy.protos.cosmos.crypto.secp256k1.keys_pb2 import PubKey
from cosmpy.protos.cosmos.tx.signing.v1beta1.signing_pb2 import SignMode
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import AuthInfo, TxBody, TxRaw
from google.protobuf.message import Message

from chain.errors import (
    InvalidPubKey,
    InvalidRequest,
    NoSignatures,
    TooManySignatures,
    UnknownExtensionOptions,
)
from chain.gas import MAX_GAS
from chain.module import Msg
from chain.router import Router
from chain.tx.canonical import CANONICAL_TXS, canonical_tx, parse_canonical

SECP256K1_PUBKEY = "/cosmos.crypto.secp256k1.PubKey"


@dataclass(frozen=True)
class Signer:
    address: str
    pubkey: bytes | None  # compressed secp256k1, when the tx carries it
    sequence: int
    signature: bytes


@dataclass(frozen=True)
class DecodedTx:
    raw: bytes
    hash: bytes
    body_bytes: bytes
    auth_info_bytes: bytes
    body: TxBody
    auth_info: AuthInfo
    messages: list[tuple[Msg, Message]]
    signers: list[Signer]

    @property
    def gas_limit(self) -> int:
        return self.auth_info.fee.gas_limit


def tx_hash(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def decode(raw: bytes, router: Router, sig_limit: int, simulate: bool = False) -> DecodedTx:
    """The tx's parts; ``simulate`` also takes SIGN_MODE_UNSPECIFIED, which a simulation's
    unsigned signer infos carry (cosmjs's, as the Cosmos SDK takes them: it checks the sign
    mode only where it verifies the signature, which simulation skips)."""
    digest = tx_hash(raw)
    known = CANONICAL_TXS.seen(canonical_tx(digest))
    envelope, body, auth_info = TxRaw(), TxBody(), AuthInfo()
    parse_canonical(envelope, raw, "tx", known)
    parse_canonical(body, envelope.body_bytes, "tx body", known)
    parse_canonical(auth_info, envelope.auth_info_bytes, "tx auth info", known)
    if auth_info.fee.gas_limit > MAX_GAS:
        raise InvalidRequest(f"invalid gas supplied; {auth_info.fee.gas_limit} > {MAX_GAS}")
    if not body.messages:
        raise InvalidRequest("tx has no messages")
    if body.extension_options:
        raise UnknownExtensionOptions("unknown extension options")
    if auth_info.fee.payer or auth_info.fee.granter:
        raise InvalidRequest("fee payer and fee granter are not supported")
    messages = [router.unpack(packed, known) for packed in body.messages]
    addresses: list[str] = []
    for route, message in messages:
        for signer in route.signers(message):
            if signer not in addresses:
                addresses.append(signer)
    infos, signatures = auth_info.signer_infos, envelope.signatures
    if not signatures:
        raise NoSignatures("no signatures supplied")
    if len(signatures) > sig_limit:
        raise TooManySignatures(f"{len(signatures)} signatures; the limit is {sig_limit}")
    if not len(infos) == len(signatures) == len(addresses):
        raise InvalidRequest(f"tx has {len(addresses)} signer(s), {len(infos)} signer info(s) "
                             f"and {len(signatures)} signature(s); they must match")
    modes = (SignMode.SIGN_MODE_DIRECT, SignMode.SIGN_MODE_UNSPECIFIED) if simulate else \
        (SignMode.SIGN_MODE_DIRECT,)
    signers = []
    for addr, info, signature in zip(addresses, infos, signatures, strict=True):
        if not info.mode_info.HasField("single") or info.mode_info.single.mode not in modes:
            raise InvalidRequest("only SIGN_MODE_DIRECT single signatures are supported")
        pubkey = None
        if info.HasField("public_key"):
            if info.public_key.type_url != SECP256K1_PUBKEY:
                raise InvalidPubKey(f"unsupported public key type {info.public_key.type_url}")
            key = PubKey()
            parse_canonical(key, info.public_key.value, "public key", known)
            if len(key.key) != 33:
                raise InvalidPubKey("secp256k1 public keys must be 33 bytes, compressed")
            pubkey = key.key
        signers.append(Signer(addr, pubkey, info.sequence, signature))
    if not known:
        CANONICAL_TXS.add(canonical_tx(digest))
    return DecodedTx(raw, digest, envelope.body_bytes, envelope.auth_info_bytes, body,
                     auth_info, messages, signers)
