"""Content Credentials (C2PA): a signed manifest inside the MP4 saying that the video is
AI-generated and what made it, and reading one back with the SDK's validation verdict."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from talkingface._version import __version__
from talkingface.io import PROVENANCE
from talkingface.pipeline.errors import ConfigError, InputError, TalkingFaceError

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
"""IPTC's term for media made by a trained model: the source type of our ``c2pa.created``."""

SIGNING_ASSERTION = "org.talkingface.signing"
"""Our assertion on how the manifest was signed: ``{"self_signed": bool}``."""

SIGNING_ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
"""The signature algorithms the C2PA SDK signs with (``es256`` = ECDSA P-256 + SHA-256)."""

_INSTALL = "pip install c2pa-python==0.38.1"
# The SDK's settings for every read and sign: it never fetches a remote manifest or a
# certificate's revocation status (nothing at run time goes over the network).
_OFFLINE = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
_ACTIONS_LABEL = re.compile(r"c2pa\.actions(\.v\d+)?")
_warned: set[str] = set()  # reasons already warned about in this process


@dataclass(frozen=True)
class SigningIdentity:
    """Who signs the Content Credentials: a certificate chain and its private key, PEM files.

    Attributes:
        certificate: PEM file of the certificate chain, the signing certificate first. The
            C2PA SDK refuses a signing certificate without key usage ``digitalSignature``,
            an extended key usage it accepts (e.g. ``emailProtection``; not
            ``documentSigning`` in c2pa-python 0.38.1) or an authority key identifier.
        private_key: PEM file of the signing certificate's private key.
        algorithm: the signature algorithm, matching the key: one of
            :data:`SIGNING_ALGORITHMS` (``es256`` for an EC P-256 key).
        self_signed: no certificate authority vouches for the certificate (as with
            :func:`local_identity`); the manifest then says so.

    Raises:
        ConfigError: an algorithm the SDK does not sign with.
    """

    certificate: Path
    private_key: Path
    algorithm: str = "es256"
    self_signed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "certificate", Path(self.certificate))
        object.__setattr__(self, "private_key", Path(self.private_key))
        if self.algorithm not in SIGNING_ALGORITHMS:
            raise ConfigError(f"unknown signing algorithm {self.algorithm!r}: use one of "
                              f"{', '.join(SIGNING_ALGORITHMS)} (es256 for an EC P-256 key)")

    def read(self) -> tuple[bytes, bytes]:
        """The certificate chain and the private key, as PEM bytes.

        Raises:
            ConfigError: a file is missing or holds no PEM block of its kind.
            OSError: a file exists but cannot be read.
        """
        pems = []
        for what, path, marker in (("certificate chain", self.certificate, b"CERTIFICATE-----"),
                                   ("private key", self.private_key, b"PRIVATE KEY-----")):
            if not path.is_file():
                raise ConfigError(f"the signing {what} {path} does not exist: give the path of "
                                  "a PEM file (or no identity, to sign with the local key)")
            data = path.read_bytes()
            if b"-----BEGIN " not in data or marker not in data:
                raise ConfigError(f"the signing {what} {path} is not a PEM {what}: convert it "
                                  "with openssl to PEM ('-----BEGIN ...' text)")
            pems.append(data)
        return pems[0], pems[1]


@dataclass(frozen=True)
class SignResult:
    """What :func:`sign_mp4` did.

    Attributes:
        signed: the file now carries a signed C2PA manifest.
        self_signed: it was signed with a self-signed certificate (False when not signed).
        reason: why it was not signed (None when signed).
    """

    signed: bool
    self_signed: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class ManifestReport:
    """The Content Credentials of a file, as :func:`read_manifest` found them.

    Attributes:
        present: the file carries a C2PA manifest (every other field is empty when not).
        ai_generated: the active manifest declares a ``c2pa.created`` action whose
            ``digitalSourceType`` is :data:`DIGITAL_SOURCE_TYPE`.
        generator: the claim generator's name (e.g. ``talkingface``).
        generator_version: its version.
        title: the manifest's title.
        signer: the signing certificate's common name (or its issuer).
        self_signed: the manifest declares a self-signed certificate (our
            :data:`SIGNING_ASSERTION`; other tools' manifests do not say, and read False).
        validation_state: the SDK's verdict: ``Invalid`` (hashes or signature do not check
            out), ``Valid`` (intact and well signed, the certificate not on a trust list:
            the state of every self-signed file) or ``Trusted``.
        validation_errors: the failure codes behind it, e.g.
            ``("signingCredential.untrusted",)``.
    """

    present: bool
    ai_generated: bool = False
    generator: str | None = None
    generator_version: str | None = None
    title: str | None = None
    signer: str | None = None
    self_signed: bool = False
    validation_state: str | None = None
    validation_errors: tuple[str, ...] = ()


def local_identity(directory: Path | None = None) -> SigningIdentity:
    """This machine's self-signed identity: made on first use, reused ever after.

    An EC P-256 key (``private-key.pem``, mode 0600) and a certificate for it, signed by itself
    and valid for ten years (``certificate.pem``), in ``directory``. The certificate has what
    the C2PA SDK demands of a signing certificate: key usage ``digitalSignature`` (critical),
    extended key usage ``emailProtection``, not a CA, and an authority key identifier (without
    one the SDK refuses it as "the certificate is invalid"). Its common name says it is
    self-signed, so C2PA viewers show that too.

    The pair is written to a fresh folder that is renamed into place, so a reader never sees
    half an identity, and of two processes making one at once, both end up using the same.

    Args:
        directory: where the identity lives (a folder of its own); default
            ``$TALKINGFACE_HOME/c2pa``, or ``~/.cache/talkingface/c2pa``.

    Raises:
        ConfigError: the folder cannot be created, or exists holding other files.
    """
    if directory is None:
        home = os.environ.get("TALKINGFACE_HOME")
        directory = (Path(home).expanduser() if home else Path.home() / ".cache" / "talkingface")
        directory = directory / "c2pa"
    directory = Path(directory)
    identity = SigningIdentity(directory / "certificate.pem", directory / "private-key.pem",
                               "es256", self_signed=True)
    if identity.certificate.is_file() and identity.private_key.is_file():
        return identity
    fix = "give a new or empty folder, or set TALKINGFACE_HOME to a writable one"
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    except OSError as exc:
        raise ConfigError(f"cannot store the local signing key in {directory}: {exc}; "
                          f"{fix}") from exc
    try:
        key_pem, certificate_pem = _self_signed_pair()
        _write_new(staging / identity.private_key.name, key_pem, 0o600)
        _write_new(staging / identity.certificate.name, certificate_pem, 0o644)
        os.rename(staging, directory)  # atomic; refused when directory holds files
    except OSError as exc:
        if not (identity.certificate.is_file() and identity.private_key.is_file()):
            raise ConfigError(f"cannot store the local signing key in {directory}: {exc}; "
                              f"{fix}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when the rename succeeded
    return identity


def sign_mp4(path: str | Path, identity: SigningIdentity | None = None, *,
             title: str | None = None) -> SignResult:
    """Embed Content Credentials into a finished MP4, in place.

    The manifest names talkingface and its version as claim generator and holds a
    ``c2pa.actions`` assertion with one ``c2pa.created`` action (``digitalSourceType``
    :data:`DIGITAL_SOURCE_TYPE`, ``softwareAgent`` talkingface) and our
    :data:`SIGNING_ASSERTION` saying whether the certificate is self-signed. No timestamp
    authority is asked (nothing goes over the network), so validators check the certificate
    at the time they read. The signed copy is written beside ``path`` and moved over it, with
    the same permissions.

    Where Content Credentials cannot be made here (c2pa-python missing or unloadable, no
    writable folder for the local key, a key file that cannot be read, the SDK refusing the
    key, certificate or file), the file stays exactly as it was, the result gives the reason,
    and a warning is emitted once per reason per process: the video's other provenance marks
    still apply.

    Args:
        path: an MP4 (or MOV/M4V), e.g. one written by :class:`talkingface.io.VideoWriter`.
        identity: the signing certificate and key; None signs with :func:`local_identity`.
        title: the manifest's title (default: the file name).

    Raises:
        InputError: ``path`` is missing or a directory.
        ConfigError: ``identity`` names files that are missing or not PEM.
    """
    path = Path(path)
    _check_file(path)
    if identity is None:
        try:
            identity = local_identity()
        except ConfigError as exc:
            return not_signed(str(exc))
    try:
        certificate, key = identity.read()
    except OSError as exc:
        return not_signed(f"cannot read the signing identity: {exc}")
    try:
        import c2pa
    except (ImportError, OSError) as exc:
        return not_signed(f"Content Credentials need c2pa-python, which cannot be loaded "
                         f"({exc}): {_INSTALL}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".c2pa{path.suffix}",
                                   dir=path.parent)
    except OSError as exc:
        return not_signed(f"cannot write beside {path}: {exc}")
    try:
        with os.fdopen(fd, "w+b") as dest, open(path, "rb") as source:
            info = c2pa.C2paSignerInfo(identity.algorithm, certificate, key, None)
            manifest = _manifest(title or path.name, identity.self_signed)
            with c2pa.Context.from_dict(_OFFLINE) as context, \
                    c2pa.Signer.from_info(info) as signer, \
                    c2pa.Builder(manifest, context=context) as builder:
                builder.sign(signer, "video/mp4", source, dest)
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except c2pa.C2paError as exc:
        _remove(tmp)
        return not_signed(f"the C2PA SDK could not sign: {_sdk_message(exc)}")
    except OSError as exc:  # disk full, the file held open by a player, ...
        _remove(tmp)
        return not_signed(f"cannot write the signed copy of the video: {exc.strerror or exc}")
    except BaseException:
        _remove(tmp)
        raise
    return SignResult(signed=True, self_signed=identity.self_signed)


def read_manifest(path: str | Path) -> ManifestReport:
    """Read and validate the Content Credentials of a file (MP4, MOV, or an image).

    Validation is offline: the SDK checks the hashes and the signature, and the certificate
    against its trust list, which holds no self-signed certificate; remote manifests and
    revocation status are not fetched.

    Returns:
        The report; ``present=False`` for a file without Content Credentials.

    Raises:
        InputError: the file is missing, a directory, or not media the C2PA SDK can parse.
        TalkingFaceError: c2pa-python cannot be loaded.
    """
    path = Path(path)
    _check_file(path)
    try:
        import c2pa
    except (ImportError, OSError) as exc:
        raise TalkingFaceError(f"reading Content Credentials needs c2pa-python, which cannot "
                               f"be loaded ({exc}): {_INSTALL}") from exc
    try:
        with c2pa.Context.from_dict(_OFFLINE) as context:
            reader = c2pa.Reader.try_create(str(path), context=context)
            if reader is None:
                return ManifestReport(present=False)
            with reader:
                store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        raise InputError(f"cannot read {path} as media: {_sdk_message(exc)}; give an MP4, "
                         "MOV or image file") from exc
    manifest = store.get("manifests", {}).get(store.get("active_manifest"), {})
    generator = (manifest.get("claim_generator_info") or [{}])[0]
    signature = manifest.get("signature_info", {})
    assertions = manifest.get("assertions", [])
    actions = [action for assertion in assertions
               if _ACTIONS_LABEL.fullmatch(assertion.get("label", ""))
               for action in assertion.get("data", {}).get("actions", [])]
    return ManifestReport(
        present=True,
        ai_generated=any(action.get("action") == "c2pa.created"
                         and action.get("digitalSourceType") == DIGITAL_SOURCE_TYPE
                         for action in actions),
        generator=generator.get("name"),
        generator_version=generator.get("version"),
        title=manifest.get("title"),
        signer=signature.get("common_name") or signature.get("issuer"),
        self_signed=any(assertion.get("label") == SIGNING_ASSERTION
                        and assertion.get("data", {}).get("self_signed") is True
                        for assertion in assertions),
        validation_state=store.get("validation_state"),
        validation_errors=tuple(status["code"] for status in store.get("validation_status", [])),
    )


def _manifest(title: str, self_signed: bool) -> dict:
    """The manifest definition the SDK's Builder takes."""
    agent = {"name": "talkingface", "version": __version__}
    created = {"action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE_TYPE,
               "softwareAgent": agent, "description": PROVENANCE}
    return {
        "claim_generator_info": [agent],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [created]}},
            {"label": SIGNING_ASSERTION, "data": {"self_signed": self_signed}},
        ],
    }


def _self_signed_pair() -> tuple[bytes, bytes]:
    """A new EC P-256 key and its self-signed signing certificate, as PEM (key, certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "talkingface local signing key (self-signed)"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "talkingface"),
    ])
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))  # tolerate a clock behind ours
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with permissions ``mode`` (never wider, whatever the umask) and write."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as file:
        file.write(data)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"file not found: {path}; check the path")
    if path.is_dir():
        raise InputError(f"{path} is a directory: give a media file inside it")


def _sdk_message(exc: Exception) -> str:
    """The SDK's error on one line, without the per-file manifest URLs (so it names a reason
    that is the same for every file)."""
    return " ".join(re.sub(r"\s*\(self#jumbf=[^)]*\)", "", str(exc)).split())


def not_signed(reason: str) -> SignResult:
    """The result for a video that gets no Content Credentials, and a warning saying why (once
    per reason per process)."""
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"no Content Credentials: {reason} (the video's other provenance marks "
                      "still apply)", stacklevel=3)
    return SignResult(signed=False, reason=reason)
