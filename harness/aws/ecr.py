"""ECR: the platform image repository and its tag policy."""

from __future__ import annotations

from typing import Any

from harness.aws.session import AwsSession, converted
from harness.errors import NotFound


def describe_repository(aws: AwsSession, name: str) -> dict[str, Any] | None:
    try:
        with converted(f"ecr.describe_repositories {name}"):
            repo = aws.client("ecr").describe_repositories(repositoryNames=[name])["repositories"][0]
    except NotFound:
        return None
    return {"name": repo["repositoryName"], "uri": repo["repositoryUri"],
            "tag_mutability": repo.get("imageTagMutability", "MUTABLE")}


def put_image(aws: AwsSession, *, repository: str, tag: str, manifest: bytes, media_type: str) -> str:
    """Push an image manifest under ``tag``; returns the registry's image digest.

    An IMMUTABLE repository refuses a second image under the same tag (ImageAlreadyExistsException).
    """
    with converted(f"ecr.put_image {repository}:{tag}"):
        image = aws.client("ecr").put_image(repositoryName=repository, imageManifest=manifest.decode(),
                                            imageManifestMediaType=media_type, imageTag=tag)["image"]
    return str(image["imageId"]["imageDigest"])


def find_image(aws: AwsSession, *, repository: str, tag: str) -> dict[str, Any] | None:
    try:
        with converted(f"ecr.describe_images {repository}:{tag}"):
            images = aws.client("ecr").describe_images(repositoryName=repository,
                                                       imageIds=[{"imageTag": tag}])["imageDetails"]
    except NotFound:
        return None
    if not images:
        return None
    return {"digest": images[0]["imageDigest"], "tags": sorted(images[0].get("imageTags", []))}


def get_manifest(aws: AwsSession, *, repository: str, tag: str) -> bytes | None:
    """The image manifest stored under ``tag``, byte for byte (None when the tag is absent)."""
    try:
        with converted(f"ecr.batch_get_image {repository}:{tag}"):
            images = aws.client("ecr").batch_get_image(repositoryName=repository,
                                                       imageIds=[{"imageTag": tag}])["images"]
    except NotFound:
        return None
    return images[0]["imageManifest"].encode() if images else None
