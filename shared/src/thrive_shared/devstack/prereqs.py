"""Checks for the tools the local stack runs: Java 17+ for Kafka, Maven to fetch its jars."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from thrive_shared.devstack.errors import PrerequisiteError

MIN_JAVA = 17
JAVA_INSTALL = "apt-get install -y openjdk-17-jre-headless"
MAVEN_INSTALL = "apt-get install -y maven"

_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def find_java(env: Mapping[str, str] | None = None) -> Path | None:
    """$JAVA_HOME/bin/java if set, else `java` on PATH."""
    env = os.environ if env is None else env
    java_home = env.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("java", path=env.get("PATH", os.defpath))
    return Path(found) if found else None


def java_major_version(java: Path) -> int | None:
    """Major version of a java binary (8 for "1.8.0_x", 17 for "17.0.x"); None if unreadable."""
    try:
        result = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(result.stderr + result.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):  # Java 8 and older call themselves 1.x
        major = int(match.group(2))
    return major


def require_java(env: Mapping[str, str] | None = None) -> Path:
    """The java binary to run Kafka with, or PrerequisiteError naming what to install."""
    java = find_java(env)
    if java is None:
        raise PrerequisiteError(
            f"Java {MIN_JAVA}+ is required to run Kafka: install it with `{JAVA_INSTALL}`."
        )
    major = java_major_version(java)
    if major is None:
        raise PrerequisiteError(
            f"Java {MIN_JAVA}+ is required to run Kafka, but `{java} -version` did not report "
            f"a version: install a working one with `{JAVA_INSTALL}`."
        )
    if major < MIN_JAVA:
        raise PrerequisiteError(
            f"Java {MIN_JAVA}+ is required to run Kafka, but {java} is Java {major}: install "
            f"a newer one with `{JAVA_INSTALL}` (or point JAVA_HOME at it)."
        )
    return java


def require_maven(env: Mapping[str, str] | None = None) -> Path:
    """The mvn binary, or PrerequisiteError naming what to install."""
    env = os.environ if env is None else env
    found = shutil.which("mvn", path=env.get("PATH", os.defpath))
    if found is None:
        raise PrerequisiteError(
            f"Maven is required to fetch the Kafka jars: install it with `{MAVEN_INSTALL}`."
        )
    return Path(found)
