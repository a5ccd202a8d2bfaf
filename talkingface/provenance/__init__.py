"""Provenance beyond metadata tags: Content Credentials (a signed C2PA manifest in every MP4)
and verification of what a video or image says about its origin."""

from talkingface.provenance.c2pa import (
    DIGITAL_SOURCE_TYPE,
    SIGNING_ASSERTION,
    ManifestReport,
    SigningIdentity,
    SignResult,
    local_identity,
    not_signed,
    read_manifest,
    sign_mp4,
)
from talkingface.provenance.verify import Verification, verify_file

__all__ = [
    "DIGITAL_SOURCE_TYPE",
    "SIGNING_ASSERTION",
    "ManifestReport",
    "SignResult",
    "SigningIdentity",
    "Verification",
    "local_identity",
    "not_signed",
    "read_manifest",
    "sign_mp4",
    "verify_file",
]
