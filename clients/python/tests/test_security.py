"""The SDK against a server with TLS and tokens: it trusts a private CA, sends its
token, and each refusal comes back as its typed exception."""
import subprocess

import pytest

import reelfarm
from conftest import Farm

VIEWER = "viewer-token-0123456789abcdef"
SUBMITTER = "submitter-token-0123456789abcdef"


def make_certificate(d):
    """A self-signed server certificate for 127.0.0.1 (EC P-256)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem"), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="module")
def secure_farm(tmp_path_factory):
    d = tmp_path_factory.mktemp("secure")
    cert, key = make_certificate(d)
    tokens = d / "tokens.yaml"
    tokens.write_text("tokens:\n"
                      f"  - {{name: v, role: viewer, token: {VIEWER}}}\n"
                      f"  - {{name: s, role: submitter, projects: [showA], token: {SUBMITTER}}}\n")
    f = Farm(d / "farm", local_workers=0,
             extra=("--tls-cert", str(cert), "--tls-key", str(key), "--tokens-file", str(tokens)))
    f.ca = str(cert)
    yield f
    f.stop()


def test_tls_with_a_token(secure_farm):
    with reelfarm.Client(secure_farm.address, token=VIEWER, tls_ca=secure_farm.ca) as c:
        assert c.list() == []
        assert c.workers() is not None


def test_refusals_are_typed(secure_farm):
    with reelfarm.Client(secure_farm.address, token="wrong-token-0123456789abcdef",
                         tls_ca=secure_farm.ca) as c:
        with pytest.raises(reelfarm.Unauthenticated):
            c.list()
    with reelfarm.Client(secure_farm.address, token=VIEWER, tls_ca=secure_farm.ca) as c:
        with pytest.raises(reelfarm.PermissionDenied):
            c.cancel(1)
    with reelfarm.Client(secure_farm.address, token=SUBMITTER, tls_ca=secure_farm.ca) as c:
        with pytest.raises(reelfarm.PermissionDenied):
            c.submit_upscale("plates/a.mp4", "renders/a.mp4", project="showB")
    # Plaintext to a TLS port does not get through.
    with reelfarm.Client(secure_farm.address, token=VIEWER, insecure=True, timeout=5) as c:
        with pytest.raises(reelfarm.Unavailable):
            c.list()
