"""The block beacon's VRF (chain/vrf.py): RFC 9381's ECVRF-EDWARDS25519-SHA512-TAI vectors,
and every way a proof could be bent to give a proposer a second output."""

import pytest

from chain import vrf
from chain.vrf import (
    _add,
    _base_mul,
    _challenge,
    _clear_cofactor,
    _decode,
    _encode,
    _encode_to_curve,
    _is_identity,
    _mul,
    _secret_scalar,
)

# RFC 9381, appendix B.3: secret keys of RFC 8032's tests 1-3, their public keys, the input,
# the proof and the output.
VECTORS = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "8657106690b5526245a92b003bb079ccd1a92130477671f6fc01ad16f26f723f26f8a57ccaed74ee1b190bed1f"
     "479d9727d2d0f9b005a6e456a35d4fb0daab1268a1b0db10836d9826a528ca76567805",
     "90cf1df3b703cce59e2a35b925d411164068269d7b2d29f3301c03dd757876ff66b71dda49d2de59d03450451a"
     "f026798e8f81cd2e333de5cdf4f3e140fdd8ae"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "f3141cd382dc42909d19ec5110469e4feae18300e94f304590abdced48aed5933bf0864a62558b3ed7f2fea45c"
     "92a465301b3bbf5e3e54ddf2d935be3b67926da3ef39226bbc355bdc9850112c8f4b02",
     "eb4440665d3891d668e7e0fcaf587f1b4bd7fbfe99d0eb2211ccec90496310eb5e33821bc613efb94db5e5b54c"
     "70a848a0bef4553a41befc57663b56373a5031"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "9bc0f79119cc5604bf02d23b4caede71393cedfbb191434dd016d30177ccbf8096bb474e53895c362d8628ee9f"
     "9ea3c0e52c7a5c691b6c18c9979866568add7a2d41b00b05081ed0f58ee5e31b3a970e",
     "645427e5d00c62a23fb703732fa5d892940935942101e456ecca7bb217c61c452118fec1219202a0edcf038bb6"
     "373241578be7217ba85a2687f7a0310b2df19f"),
]
SECRET, PUBLIC, ALPHA, PROOF, OUTPUT = (bytes.fromhex(v) for v in VECTORS[0])
L = 2**252 + 27742317777372353535851937790883648493
# A point of order 8 (RFC 8032's canonical encoding of one of the small-order points).
ORDER_8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")


@pytest.mark.parametrize(("secret", "public", "alpha", "proof", "output"), VECTORS)
def test_the_rfc_vectors_prove_and_verify(secret, public, alpha, proof, output):
    secret, public, alpha, proof, output = (bytes.fromhex(v) for v in
                                            (secret, public, alpha, proof, output))
    assert vrf.public_key(secret) == public
    assert vrf.prove(secret, alpha) == proof
    assert vrf.verify(public, proof, alpha) == output == vrf.output(proof)


def test_a_proof_made_with_another_nonce_verifies_to_the_same_output():
    """What is unique is the output: a prover may pick its proof's nonce, as a signer may,
    but every proof that verifies gives the one output its key and input fix."""
    x = _secret_scalar(SECRET)
    h = _encode_to_curve(PUBLIC, ALPHA)
    gamma = _mul(x, h)
    k = 123456789
    c = _challenge(PUBLIC, h, gamma, _base_mul(k), _mul(k, h))
    other = gamma + c.to_bytes(16, "little") + ((k + c * x) % L).to_bytes(32, "little")
    assert other != PROOF
    assert vrf.verify(PUBLIC, other, ALPHA) == OUTPUT


def test_every_single_bit_flip_of_a_proof_is_refused():
    for i in range(len(PROOF) * 8):
        bent = bytearray(PROOF)
        bent[i // 8] ^= 1 << (i % 8)
        with pytest.raises(vrf.InvalidProof):
            vrf.verify(PUBLIC, bytes(bent), ALPHA)


def test_a_proof_verifies_for_its_key_and_input_only():
    with pytest.raises(vrf.InvalidProof):
        vrf.verify(PUBLIC, PROOF, b"\x00")
    other = bytes.fromhex(VECTORS[1][1])
    with pytest.raises(vrf.InvalidProof):
        vrf.verify(other, PROOF, ALPHA)


def test_an_unreduced_scalar_is_refused_though_it_would_verify_modulo_the_order():
    s = int.from_bytes(PROOF[48:], "little")
    bent = PROOF[:48] + (s + L).to_bytes(32, "little")
    with pytest.raises(vrf.InvalidProof, match="not reduced"):
        vrf.verify(PUBLIC, bent, ALPHA)


def test_a_proof_point_with_a_small_order_part_is_refused():
    """Gamma plus a point of order 8 has the same output (the cofactor clears it): a second
    proof of the same value, which only the subgroup check keeps out."""
    torsion = _decode(ORDER_8)
    assert torsion is not None and _is_identity(_clear_cofactor(torsion))
    bent = _encode(_add(_decode(PROOF[:32]), torsion))
    assert vrf.output(bent + PROOF[32:]) == OUTPUT
    with pytest.raises(vrf.InvalidProof):
        vrf.verify(PUBLIC, bent + PROOF[32:], ALPHA)


@pytest.mark.parametrize("public", [bytes(32), b"\xff" * 32, ORDER_8, bytes([1]) + bytes(31),
                                    PUBLIC[:31]])
def test_keys_that_are_no_prime_order_point_are_refused(public):
    with pytest.raises(vrf.InvalidProof):
        vrf.verify(public, PROOF, ALPHA)


@pytest.mark.parametrize("length", [0, 1, 79, 81, 160])
def test_proofs_of_another_length_are_refused(length):
    with pytest.raises(vrf.InvalidProof):
        vrf.verify(PUBLIC, (PROOF * 2)[:length], ALPHA)


def test_an_all_zero_proof_is_refused():
    with pytest.raises(vrf.InvalidProof):
        vrf.verify(PUBLIC, bytes(80), ALPHA)
