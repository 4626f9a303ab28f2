"""Checkpoints: fetch from a path or https URL with sha256, training, loading with clear mismatches."""
import hashlib
import http.server
import os
import ssl
import threading

import pytest
import torch

from build_helpers import write_config


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def tiny_checkpoint(model_dir):
    import bad_models

    path = str(model_dir / "tiny.pt")
    torch.save(bad_models.TinyNet().state_dict(), path)
    return path


def leftovers(workdir):
    found = []
    for root, _, files in os.walk(workdir):
        found += [f for f in files if ".partial" in f or ".tmp" in f]
    return found


def test_fetch_local_path_verifies_sha256(cli, model_dir, tiny_checkpoint, tmp_path):
    path = write_config(model_dir, checkpoint={"path": "tiny.pt", "sha256": sha(tiny_checkpoint)})
    res = cli("checkpoint", "fetch", path, "--workdir", tmp_path / "w", "--json")
    assert res.code == 0, res.err
    assert res.json["summary"]["sha256"] == sha(tiny_checkpoint)
    assert sha(tmp_path / "w" / "checkpoint" / "checkpoint.pt") == sha(tiny_checkpoint)


def test_wrong_sha256_leaves_nothing(cli, model_dir, tiny_checkpoint, tmp_path):
    path = write_config(model_dir, checkpoint={"path": "tiny.pt", "sha256": "0" * 64})
    res = cli("checkpoint", "fetch", path, "--workdir", tmp_path / "w")
    assert res.code != 0
    assert "sha256 mismatch" in res.error_line and "0" * 64 in res.error_line
    assert not os.path.exists(tmp_path / "w" / "checkpoint" / "checkpoint.pt")
    assert not os.path.exists(tmp_path / "w" / "state" / "checkpoint.json")
    assert leftovers(tmp_path / "w") == []


def test_missing_checkpoint(cli, model_dir, tmp_path):
    path = write_config(model_dir, checkpoint={"path": "absent.pt"})
    res = cli("checkpoint", "fetch", path, "--workdir", tmp_path / "w")
    assert res.code != 0 and "checkpoint.path: cannot read" in res.error_line and "absent.pt" in res.error_line


def test_corrupt_checkpoint_is_named_at_export(cli, model_dir, tmp_path):
    (model_dir / "bad.pt").write_bytes(os.urandom(4096))
    path = write_config(model_dir, checkpoint={"path": "bad.pt"})
    assert cli("checkpoint", "fetch", path, "--workdir", tmp_path / "w").code == 0
    res = cli("export", path, "--workdir", tmp_path / "w")
    assert res.code != 0 and "is not a PyTorch file" in res.error_line
    # The user's file is named, not the work directory's copy.
    assert str(model_dir / "bad.pt") in res.error_line and "checkpoint.pt" not in res.error_line
    assert not os.path.exists(tmp_path / "w" / "state" / "export.json")


def test_whole_module_checkpoint_states_the_contract(cli, model_dir, tmp_path):
    import bad_models

    torch.save(bad_models.TinyNet(), str(model_dir / "whole.pt"))  # the module, not its state dict
    path = write_config(model_dir, checkpoint={"path": "whole.pt"})
    assert cli("checkpoint", "fetch", path, "--workdir", tmp_path / "w").code == 0
    res = cli("export", path, "--workdir", tmp_path / "w")
    assert res.code == 3
    line = res.error_line
    assert "checkpoint %s holds pickled Python objects" % (model_dir / "whole.pt") in line
    assert "torch.save(model.state_dict(), PATH)" in line and '{"state_dict": <state dict>}' in line
    assert "corrupt" not in line and "\x1b" not in res.err
    assert not os.path.exists(tmp_path / "w" / "state" / "export.json")


def test_checkpoint_of_another_architecture_names_keys(cli, model_dir, tmp_path):
    import bad_models

    torch.save(bad_models.OtherNet().state_dict(), str(model_dir / "other.pt"))
    path = write_config(model_dir, checkpoint={"path": "other.pt"})
    assert cli("checkpoint", "fetch", path, "--workdir", tmp_path / "w").code == 0
    res = cli("export", path, "--workdir", tmp_path / "w")
    assert res.code != 0
    line = res.error_line
    assert "checkpoint %s does not fit TinyNet" % (model_dir / "other.pt") in line
    assert "missing keys: head.bias, head.weight" in line
    assert "unexpected keys: fc.bias, fc.weight" in line
    assert "conv.weight (checkpoint (4, 3, 3, 3), model (8, 3, 3, 3))" in line


def test_training_is_reproducible(cli, model_dir, tmp_path):
    path = write_config(model_dir)
    digests = []
    for run in ("a", "b"):
        res = cli("train", path, "--workdir", tmp_path / run, "--json")
        assert res.code == 0, res.err
        digests.append(sha(tmp_path / run / "checkpoint" / "checkpoint.pt"))
    assert digests[0] == digests[1]


# -- https ------------------------------------------------------------------------------------

def _self_signed(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def https_server(tmp_path):
    """A real HTTPS server on loopback; `truncate` makes it promise more bytes than it sends."""
    cert, key = _self_signed(tmp_path)
    files = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + (1000 if self.path.endswith("truncated") else 0)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": "https://127.0.0.1:%d" % server.server_address[1], "files": files, "cert": cert}
    server.shutdown()
    server.server_close()


def https_config(https_server, model_dir, url_path, body, sha256):
    """Serve `body` at `url_path` and write a config that fetches it with `sha256`."""
    if body is not None:
        https_server["files"][url_path] = body
    return write_config(model_dir, checkpoint={"url": https_server["url"] + url_path, "sha256": sha256})


@pytest.mark.timeout(60)
def test_fetch_https(cli, model_dir, tiny_checkpoint, tmp_path, https_server, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", https_server["cert"])
    path = https_config(https_server, model_dir, "/models/tiny.pt", open(tiny_checkpoint, "rb").read(),
                        sha(tiny_checkpoint))
    res = cli("checkpoint", "fetch", path, "--workdir", tmp_path / "w")
    assert res.code == 0, res.err
    assert sha(tmp_path / "w" / "checkpoint" / "checkpoint.pt") == sha(tiny_checkpoint)


@pytest.mark.timeout(60)
def test_https_certificate_is_verified(cli, model_dir, tiny_checkpoint, tmp_path, https_server, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    path = https_config(https_server, model_dir, "/tiny.pt", open(tiny_checkpoint, "rb").read(), sha(tiny_checkpoint))
    res = cli("checkpoint", "fetch", path, "--workdir", tmp_path / "w")
    assert res.code != 0 and "CERTIFICATE_VERIFY_FAILED" in res.error_line


@pytest.mark.timeout(60)
def test_interrupted_download_leaves_nothing(cli, model_dir, tiny_checkpoint, tmp_path, https_server, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", https_server["cert"])
    path = https_config(https_server, model_dir, "/tiny.pt.truncated", open(tiny_checkpoint, "rb").read(),
                        sha(tiny_checkpoint))
    res = cli("checkpoint", "fetch", path, "--workdir", tmp_path / "w")
    assert res.code != 0 and "checkpoint download" in res.error_line
    assert os.listdir(tmp_path / "w" / "checkpoint") == []
    assert not os.path.exists(tmp_path / "w" / "state" / "checkpoint.json")


@pytest.mark.timeout(60)
def test_http_error_is_one_line(cli, model_dir, tmp_path, https_server, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", https_server["cert"])
    path = https_config(https_server, model_dir, "/missing.pt", None, "1" * 64)
    res = cli("checkpoint", "fetch", path, "--workdir", tmp_path / "w")
    assert res.code != 0 and "HTTP 404" in res.error_line
