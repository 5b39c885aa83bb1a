"""Keys generated inside a PKCS#11 token (an HSM, a smartcard, SoftHSM2 in tests).

The key pair (ECDSA P-256) is made by the token itself and its private half
is marked sensitive and not extractable: it never leaves the token. What
``tuf-repo`` keeps is a key file with the public key, the signer URI that
securesystemslib's ``HSMSigner`` understands (``hsm:<id>?label=<token>``) and
the name of the environment variable that holds the PIN.

The PKCS#11 module is named by ``PYKCS11LIB``. A PKCS#11 library can be
initialised only once per process, so each ``tuf-repo`` command does one step.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from caio.core.files import atomic_write_bytes
from tuf_repo.errors import KeyFileError
from tuf_repo.keys import KeyFile

MODULE_ENV = "PYKCS11LIB"


def _pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError as e:  # the hsm extra is not installed
        raise KeyFileError("PKCS#11 support is missing: pip install 'securesystemslib[hsm]'") from e
    return pkcs11


def create_hsm_key(
    keydir: Path, role: str, *, token_label: str, pin_env: str, label: str | None = None
) -> KeyFile:
    """Generate an ECDSA P-256 key pair inside the token and write its key file.

    Raises:
        KeyFileError: no module, no token, a wrong PIN, or the token refused
            the key; nothing is written then.
    """
    from securesystemslib.signer import HSMSigner

    pin = os.environ.get(pin_env)
    if not pin:
        raise KeyFileError(f"set {pin_env} to the user PIN of token {token_label!r}")
    module = os.environ.get(MODULE_ENV)
    if not module or not Path(module).is_file():
        raise KeyFileError(f"set {MODULE_ENV} to the PKCS#11 module (now: {module or 'unset'})")
    pkcs11 = _pkcs11()
    from pkcs11.util import biginteger
    from pkcs11.util.ec import encode_named_curve_parameters

    hsm_id = secrets.randbelow(2**31 - 2) + 1
    name = label or f"{role}-{hsm_id}"
    try:
        token = pkcs11.lib(module).get_token(token_label=token_label)
        with token.open(rw=True, user_pin=pin) as session:
            parameters = session.create_domain_parameters(
                pkcs11.KeyType.EC,
                {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                local=True,
            )
            parameters.generate_keypair(
                store=True,
                id=biginteger(hsm_id),
                label=name,
                public_template={pkcs11.Attribute.VERIFY: True},
                private_template={
                    pkcs11.Attribute.SIGN: True,
                    pkcs11.Attribute.SENSITIVE: True,
                    pkcs11.Attribute.EXTRACTABLE: False,
                },
            )
        uri, public = HSMSigner.import_(hsm_id, token_label, lambda _: pin)
    except pkcs11.exceptions.PinIncorrect as e:
        raise KeyFileError(f"token {token_label!r}: wrong PIN (from {pin_env})") from e
    except pkcs11.exceptions.NoSuchToken as e:
        raise KeyFileError(f"no PKCS#11 token labelled {token_label!r} in {module}") from e
    except (pkcs11.exceptions.PKCS11Error, ValueError, RuntimeError) as e:
        raise KeyFileError(f"token {token_label!r}: {type(e).__name__}: {e}") from e
    path = keydir / f"{role}-{public.keyid[:12]}.json"
    body = {
        "role": role,
        "keyid": public.keyid,
        "public": public.to_dict(),
        "uri": uri,
        "pin_env": pin_env,
        "token_label": token_label,
        "hsm_label": name,
    }
    keydir.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write_bytes(path, (json.dumps(body, indent=2) + "\n").encode(), mode=0o600)
    return KeyFile(path, role, public, None, uri, pin_env)
