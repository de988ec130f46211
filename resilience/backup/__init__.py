"""Backups of PostgreSQL, Redis, file trees and configuration, as one catalogued set.

Quick use (see manager.py for the flow)::

    repo = LocalRepository("/srv/backups")
    br = PgBackRest(repo=repo, workdir="/srv/pgbr", pg_data=data, pg_port=5432, pg_socket_dir=sock)
    mgr = BackupManager(repo, pg=br, redis=RedisRdbEngine(port=6379), files=["/srv/uploads"])
    mgr.setup(); s = mgr.backup("full"); mgr.verify(s.id).raise_for_problems()
    res = mgr.restore("latest", RestoreTargets(pg_data=new_dir, redis_dir=..., files_dir=...))
"""

from resilience.backup.catalog import BackupPart, BackupSet, BackupType, Catalog, ObjectRef
from resilience.backup.engines.config import ConfigEngine
from resilience.backup.engines.files import FileTreeEngine
from resilience.backup.engines.pg_dump import PgDumpEngine
from resilience.backup.engines.pgbackrest import PgBackRest, PgBackRestBackup, StanzaInfo, format_target_time
from resilience.backup.engines.redis_rdb import RedisRdbEngine, RestoredRedis
from resilience.backup.errors import (
    BackupError,
    BackupNotFound,
    EngineError,
    ReplicationError,
    RepositoryAuthError,
    RepositoryCorrupt,
    RepositoryError,
    RepositoryMissing,
    RepositoryUnreachable,
    RestoreTargetNotEmpty,
    ToolMissing,
    VerifyFailed,
)
from resilience.backup.manager import BackupManager, RestoreResult, RestoreTargets, Step
from resilience.backup.postgres import LocalCluster
from resilience.backup.replication import LagAlert, LagMonitor, LagSample, Replica
from resilience.backup.repository import LocalRepository, PgBackRestS3, Repository, S3Repository
from resilience.backup.verify import VerifyReport, verify_repository

__all__ = [
    "BackupError", "BackupManager", "BackupNotFound", "BackupPart", "BackupSet", "BackupType", "Catalog",
    "ConfigEngine", "EngineError", "FileTreeEngine", "LagAlert", "LagMonitor", "LagSample", "LocalCluster", "LocalRepository", "ObjectRef",
    "PgBackRest", "PgBackRestBackup", "PgBackRestS3", "PgDumpEngine", "RedisRdbEngine", "Replica", "ReplicationError",
    "Repository", "RepositoryAuthError", "RepositoryCorrupt", "RepositoryError", "RepositoryMissing",
    "RepositoryUnreachable", "RestoreResult", "RestoreTargetNotEmpty", "RestoreTargets", "RestoredRedis", "S3Repository", "StanzaInfo",
    "Step", "ToolMissing", "VerifyFailed", "VerifyReport", "format_target_time", "verify_repository",
]
