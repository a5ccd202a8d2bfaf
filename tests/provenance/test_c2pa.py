"""Content Credentials: signing a written MP4 with the local self-signed identity, reading the
manifest back with its validation verdict, and every way signing can be refused."""

from __future__ import annotations

import os
import stat
import sys
import warnings

import av
import pytest
import torch

import talkingface.provenance.c2pa as c2pa_module
from talkingface._version import __version__
from talkingface.io import VideoWriter, probe_media
from talkingface.pipeline.contracts import Audio
from talkingface.pipeline.errors import ConfigError, InputError
from talkingface.provenance import (
    DIGITAL_SOURCE_TYPE,
    SigningIdentity,
    local_identity,
    read_manifest,
    sign_mp4,
)


@pytest.fixture
def mp4(tmp_path):
    """A 0.4 s talking-face-shaped MP4: 10 frames of 64x64 noise at 25 fps with sound."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (10, 64, 64, 3), dtype=torch.uint8, generator=generator)
    samples = torch.zeros(6400) + 0.01 * torch.randn(6400, generator=generator)
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, 25, (64, 64), audio=Audio(samples, 16000), preset="ultrafast") as w:
        w.write(frames)
    return path


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Forget which reasons this process already warned about."""
    monkeypatch.setattr(c2pa_module, "_warned", set())


def test_signed_file_declares_ai_generation_and_self_signing(mp4, tmp_path):
    before = probe_media(mp4)
    result = sign_mp4(mp4, local_identity(tmp_path / "id"), title="demo clip")
    assert result.signed and result.self_signed and result.reason is None

    report = read_manifest(mp4)
    assert report.present and report.ai_generated
    assert (report.generator, report.generator_version) == ("talkingface", __version__)
    assert report.title == "demo clip"
    assert report.self_signed
    assert "self-signed" in report.signer
    # Intact and well signed, but no trust list holds a self-signed certificate.
    assert report.validation_state == "Valid"
    assert report.validation_errors == ("signingCredential.untrusted",)

    after = probe_media(mp4)
    assert after["video"]["frames"] == before["video"]["frames"] == 10
    assert after["video"]["duration"] == pytest.approx(before["video"]["duration"])
    assert after["audio"]["duration"] == pytest.approx(before["audio"]["duration"])
    with av.open(str(mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 10


def test_manifest_holds_the_created_action(mp4, tmp_path):
    import c2pa

    sign_mp4(mp4, local_identity(tmp_path / "id"))
    with c2pa.Reader(str(mp4)) as reader:
        manifest = reader.get_active_manifest()
    actions = next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))
    (created,) = actions["data"]["actions"]
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert created["softwareAgent"]["name"] == "talkingface"
    assert manifest["title"] == mp4.name


def test_tampered_file_is_invalid(mp4, tmp_path):
    sign_mp4(mp4, local_identity(tmp_path / "id"))
    data = bytearray(mp4.read_bytes())
    data[-100] ^= 0xFF  # inside the media data, which the manifest hashes
    mp4.write_bytes(bytes(data))
    report = read_manifest(mp4)
    assert report.present and report.validation_state == "Invalid"
    assert any(code.startswith("assertion.bmffHash") for code in report.validation_errors)


def test_local_identity_is_made_once_and_reused(tmp_path):
    first = local_identity(tmp_path / "id")
    again = local_identity(tmp_path / "id")
    assert first == again and first.self_signed and first.algorithm == "es256"
    assert first.certificate.read_bytes() == again.certificate.read_bytes()
    assert stat.S_IMODE(first.private_key.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["id"]  # no staging folder left behind


def test_local_identity_defaults_to_talkingface_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKINGFACE_HOME", str(tmp_path))
    assert local_identity().certificate == tmp_path / "c2pa" / "certificate.pem"


def test_local_identity_refuses_a_folder_of_other_files(tmp_path):
    (tmp_path / "id").mkdir()
    (tmp_path / "id" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="new or empty folder"):
        local_identity(tmp_path / "id")


def test_signing_keeps_the_file_permissions(mp4, tmp_path):
    os.chmod(mp4, 0o644)
    sign_mp4(mp4, local_identity(tmp_path / "id"))
    assert stat.S_IMODE(mp4.stat().st_mode) == 0o644
    assert [p.name for p in mp4.parent.iterdir() if p.name.startswith(".")] == []


def test_configured_identity_signs_as_not_self_signed(mp4, tmp_path):
    local = local_identity(tmp_path / "id")
    configured = SigningIdentity(str(local.certificate), str(local.private_key))
    assert sign_mp4(mp4, configured).signed
    assert not read_manifest(mp4).self_signed


def test_unsigned_mp4_has_no_manifest(mp4):
    report = read_manifest(mp4)
    assert not report.present and report.validation_state is None


def test_missing_and_non_media_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_manifest(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    with pytest.raises(InputError, match="cannot read .* as media"):
        read_manifest(text)
    with pytest.raises(InputError, match="not found"):
        sign_mp4(tmp_path / "missing.mp4")


def test_configured_identity_with_missing_or_non_pem_files_is_a_config_error(mp4, tmp_path):
    local = local_identity(tmp_path / "id")
    with pytest.raises(ConfigError, match="does not exist"):
        sign_mp4(mp4, SigningIdentity(local.certificate, tmp_path / "missing-key.pem"))
    der = tmp_path / "key.der"
    der.write_bytes(b"\x30\x82\x01\x00")
    with pytest.raises(ConfigError, match="not a PEM"):
        sign_mp4(mp4, SigningIdentity(local.certificate, der))
    with pytest.raises(ConfigError, match="es256"):
        SigningIdentity(local.certificate, local.private_key, algorithm="rsa")


def test_without_the_sdk_the_file_is_unchanged_and_warned_about_once(
    mp4, tmp_path, monkeypatch, fresh_warnings
):
    identity = local_identity(tmp_path / "id")
    monkeypatch.setitem(sys.modules, "c2pa", None)  # import c2pa now raises ImportError
    original = mp4.read_bytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [sign_mp4(mp4, identity) for _ in range(2)]
    assert [r.signed for r in results] == [False, False]
    assert "c2pa-python" in results[0].reason and results[0].reason == results[1].reason
    assert len(caught) == 1 and "no Content Credentials" in str(caught[0].message)
    assert mp4.read_bytes() == original


def test_a_key_the_sdk_refuses_leaves_the_file_unchanged(mp4, tmp_path, fresh_warnings):
    certificate = local_identity(tmp_path / "id").certificate
    other_key = local_identity(tmp_path / "other").private_key  # not the certificate's key
    original = mp4.read_bytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [sign_mp4(mp4, SigningIdentity(certificate, other_key)) for _ in range(2)]
    assert not results[0].signed and "C2PA SDK" in results[0].reason
    assert results[0].reason == results[1].reason
    assert len(caught) == 1
    assert mp4.read_bytes() == original
    assert [p.name for p in mp4.parent.iterdir() if p.name.startswith(".")] == []
