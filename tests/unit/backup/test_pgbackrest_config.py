"""pgbackrest.conf as written: bundling by repository kind, restore-only parallelism, file log level."""

from __future__ import annotations

from resilience.backup import LocalRepository, PgBackRest, PgBackRestS3, S3Repository


def conf(tmp_path, repo, **kw) -> tuple[PgBackRest, str]:
    br = PgBackRest(repo=repo, workdir=tmp_path / "pgbr", pg_data=tmp_path / "data", pg_port=5999, **kw)
    return br, br.write_config().read_text()


def test_local_repository_is_not_bundled_and_logs_at_info(tmp_path):
    br, text = conf(tmp_path, LocalRepository(tmp_path / "repo"))
    assert br.bundles is False and "repo1-bundle=n\n" in text
    assert "log-level-file=info\n" in text and "process-max=2\n" in text
    assert br.restore_process_max == 4  # restore only; backups keep process-max 2


def test_s3_repository_is_bundled_and_explicit_choices_win(tmp_path):
    s3 = S3Repository(endpoint_url="http://127.0.0.1:9", bucket="b-b", access_key="a", secret_key="s",
                      pgbackrest=PgBackRestS3(port=9))
    br, text = conf(tmp_path, s3)
    assert br.bundles is True and "repo1-bundle=y\n" in text
    br, text = conf(tmp_path, LocalRepository(tmp_path / "repo"), bundle=True, restore_process_max=3,
                    log_level_file="detail", process_max=1)
    assert "repo1-bundle=y\n" in text and "log-level-file=detail\n" in text and br.restore_process_max == 3
    assert PgBackRest(repo=LocalRepository(tmp_path / "r"), workdir=tmp_path / "w", pg_data=tmp_path / "d",
                      pg_port=1, process_max=1).restore_process_max == 3


def test_compression_by_repository_kind_and_an_explicit_choice_wins(tmp_path):
    local = LocalRepository(tmp_path / "repo")
    br, text = conf(tmp_path, local)
    assert br.compression == "none" and "compress-type=none\n" in text  # restore copies, no decompression
    s3 = S3Repository(endpoint_url="http://127.0.0.1:9", bucket="b-b", access_key="a", secret_key="s",
                      pgbackrest=PgBackRestS3(port=9))
    br, text = conf(tmp_path, s3)
    assert br.compression == "lz4" and "compress-type=lz4\n" in text  # fewer bytes over the network
    br, text = conf(tmp_path, local, compress_type="zst")
    assert "compress-type=zst\n" in text
