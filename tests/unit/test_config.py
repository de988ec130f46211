"""Config validation: each named bad config gives its expected one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.config import Config, load_config, parse_config
from harness.errors import ConfigError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "configs"
BAD = sorted(FIXTURES.glob("*.toml"))


def expected_error(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: '"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_gives_one_line_naming_the_key(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected_error(path) in message
    assert info.value.exit_code == 2


def test_there_are_enough_bad_configs() -> None:
    assert len(BAD) >= 10


def test_defaults_are_the_seed_targets() -> None:
    t = Config().targets
    assert (t.time_to_detect, t.mttr, t.rto, t.rpo) == (60, 1800, 4 * 3600, 15 * 60)
    assert (t.breaker_failure_threshold, t.breaker_wait_in_open, t.breaker_decision) == (5, 60, 0.1)
    assert (t.health_postgres_latency, t.health_redis_latency, t.health_interval) == (1.0, 0.5, 30)
    assert (t.recovery_time, t.recovery_success_rate) == (30, 0.95)


@pytest.mark.parametrize(("text", "seconds"), [(0.1, 0.1), (30, 30.0), ("100ms", 0.1), ("15min", 900.0),
                                               ("4h", 14400.0), ("2.5s", 2.5), ("1d", 86400.0)])
def test_durations_accept_units(text, seconds) -> None:
    assert parse_config({"targets": {"mttr": text}}).targets.mttr == pytest.approx(seconds)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found$"):
        load_config(tmp_path / "nope.toml")


def test_config_is_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        Config().run.probe_interval = 3  # type: ignore[misc]


def test_valid_file_round_trips(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[run]\nprobe_interval = "50ms"\n[scenarios.db_outage]\nhold = "2s"\n')
    cfg = load_config(f)
    assert cfg.run.probe_interval == 0.05
    assert cfg.scenario("db_outage").hold == 2.0
    assert cfg.scenario("cache_outage").hold == 5.0
