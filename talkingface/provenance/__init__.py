"""Provenance that survives: invisible watermark, Content Credentials, verification."""

from talkingface.provenance.c2pa import (
    DIGITAL_SOURCE_TYPE,
    SIGNING_ASSERTION,
    ManifestReport,
    SigningIdentity,
    SignResult,
    local_identity,
    read_manifest,
    sign_mp4,
)

__all__ = [
    "DIGITAL_SOURCE_TYPE",
    "SIGNING_ASSERTION",
    "ManifestReport",
    "SignResult",
    "SigningIdentity",
    "local_identity",
    "read_manifest",
    "sign_mp4",
]
