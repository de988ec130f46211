"""Configuration files: a file-tree backup of an explicit list of paths.

Configuration is scattered (postgresql.conf, redis.conf, the app's TOML), so each file is
recorded under its absolute path and restored below the target directory at the same
relative place: /etc/app/app.toml → <target>/etc/app/app.toml.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from resilience.backup.engines.files import FileTreeEngine
from resilience.backup.errors import EngineError


class ConfigEngine(FileTreeEngine):
    """A FileTreeEngine over named files instead of one directory."""

    kind = "config"
    engine = "config"

    def __init__(self, paths: Sequence[Path | str], name: str = "config") -> None:
        self.paths = [Path(p).absolute() for p in paths]
        if not self.paths:
            raise ValueError("ConfigEngine needs at least one path")
        self.root = Path("/")
        self.name = name

    def __repr__(self) -> str:
        return f"ConfigEngine({[str(p) for p in self.paths]!r})"

    def sources(self) -> Iterator[tuple[str, Path]]:
        for p in self.paths:
            if p.is_dir():
                for rel, f in FileTreeEngine(p).sources():
                    yield str((p / rel).relative_to("/")), f
            elif p.is_file():
                yield str(p.relative_to("/")), p
            else:
                raise EngineError(f"{self.name}: configuration file {p} does not exist")
