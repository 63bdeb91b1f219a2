"""Settings: config.toml and narratives/*.toml, validated once with file:line errors."""

from bot.config.durations import Duration, parse_duration
from bot.config.files import ConfigError
from bot.config.narratives import Narrative, load_narrative, load_narratives
from bot.config.settings import (
    Config,
    DigestConfig,
    FeedConfig,
    FetchConfig,
    MatchingConfig,
    ModelConfig,
    ScheduleConfig,
    StateConfig,
    TelegramConfig,
    TrendsConfig,
    load_config,
)

__all__ = [
    "Config", "ConfigError", "DigestConfig", "Duration", "FeedConfig", "FetchConfig",
    "MatchingConfig", "ModelConfig", "Narrative", "ScheduleConfig", "StateConfig",
    "TelegramConfig", "TrendsConfig", "load_config", "load_narrative", "load_narratives",
    "parse_duration",
]
