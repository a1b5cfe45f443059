"""The one settings model of the project: the index's fields plus the bot's.

Read from the environment and `.env` by entry points only (`python -m bot`, `python -m
index`); every field is documented in `.env.example`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import NoDecode

from index.settings import IndexSettings

DISCORD_API = "https://discord.com/api/v10"
DISCORD_GATEWAY = "wss://gateway.discord.gg/"
_DEFAULT_URLS = {"discord_api_base_url": DISCORD_API, "discord_gateway_url": DISCORD_GATEWAY}


def _id_list(value: object) -> object:
    """Accept `1,2,3`, `1 2 3` or a JSON list from the environment."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part for part in text.replace(",", " ").split() if part]
    return value


IdList = Annotated[list[int], NoDecode]


class Settings(IndexSettings):
    """Everything `python -m bot` needs, on top of the index settings."""

    # Answering
    search_k: int = Field(5, ge=1, le=50, description="Passages retrieved per question.")
    answer_max_sentences: int = Field(2, ge=1, le=10)
    answer_max_words: int = Field(60, ge=10, le=1000)
    answer_max_quote_chars: int = Field(
        600,
        ge=100,
        le=1000,
        description="Longest single sentence quoted whole (past answer_max_words); the cap "
        "keeps a quote inside a Discord embed field (1,024 characters).",
    )
    abstain_threshold: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Probability that the passages answer (bot/abstention.py) under which "
        "the bot says the articles do not say.",
    )
    max_question_length: int = Field(500, ge=10, le=4000)

    # Optional LLM answerer (any OpenAI-compatible Chat Completions endpoint)
    llm_base_url: str | None = Field(None, description="e.g. http://localhost:11434/v1")
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout: float = Field(30.0, gt=0, le=600, allow_inf_nan=False)
    llm_max_tokens: int = Field(400, ge=16, le=100_000)
    llm_condense: bool = Field(
        True,
        description="With an LLM: rewrite a follow-up as a standalone question for the search "
        "(bot/condense.py); off, follow-ups are read by the offline rules alone.",
    )

    # Discord
    discord_token: SecretStr | None = None
    discord_guild_ids: IdList = Field(default_factory=list)
    discord_admin_user_ids: IdList = Field(default_factory=list)
    discord_api_base_url: str = DISCORD_API
    discord_gateway_url: str = DISCORD_GATEWAY
    discord_cooldown_seconds: float = Field(
        10.0,
        ge=0,
        le=86_400,
        allow_inf_nan=False,
        description="Per-user rate limit: one more question every this many seconds, after a "
        "burst of DISCORD_BURST (0 disables the limit).",
    )
    discord_burst: int = Field(
        5,
        ge=1,
        le=100,
        description="Questions a user may ask in quick succession (follow-ups) before "
        "DISCORD_COOLDOWN_SECONDS applies; 1 is a plain cooldown.",
    )
    discord_threads: Literal["auto", "off"] = Field(
        "auto",
        description="auto: a question asked in a server channel is answered in a new thread "
        "started from the answer, where every message is a follow-up; off: answer as replies.",
    )
    discord_private_by_default: bool = False
    discord_answer_mentions: bool = True
    discord_drain_seconds: float = Field(
        7.0,
        ge=0,
        le=600,
        allow_inf_nan=False,
        description="On SIGTERM/SIGINT, how long questions already being answered may take to "
        "be delivered before the bot exits (a second signal stops at once).",
    )
    discord_answer_workers: int = Field(
        4,
        ge=1,
        le=64,
        description="Questions answered at once; the others wait their turn, already "
        "acknowledged. Raise it for an LLM endpoint that serves requests in parallel.",
    )
    discord_shard_count: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Gateway shards of the bot across all its processes; empty: the number "
        "Discord recommends, all run by this process.",
    )
    discord_shard_ids: IdList = Field(
        default_factory=list,
        description="The shards this process runs (0-based, below DISCORD_SHARD_COUNT), for "
        "splitting one bot over several processes; empty: all of them.",
    )
    index_poll_seconds: float = Field(
        5.0,
        gt=0,
        le=86_400,
        allow_inf_nan=False,
        description="How often a running bot looks for a newly published index.",
    )
    feedback_db: Path = Path("data/feedback.sqlite")
    refresh_minutes: float = Field(
        60.0,
        ge=0,
        le=10_080,
        allow_inf_nan=False,
        description="How often the running bot refreshes the feeds and sitemaps of "
        "SOURCES_FILE, in the background (0: never; `python -m index refresh` still works).",
    )

    # Conversations (follow-up questions in threads, reply chains, DMs, the terminal chat)
    conversation_idle_minutes: float = Field(
        30.0,
        gt=0,
        le=10_080,
        allow_inf_nan=False,
        description="A conversation idle this long is over: the next question starts afresh "
        "and its turns are deleted.",
    )
    conversation_max_turns: int = Field(
        20,
        ge=1,
        le=200,
        description="Turns kept per conversation (older ones are deleted); follow-ups read "
        "only the last few.",
    )
    conversations_db: Path = Field(
        Path("data/conversations.sqlite"),
        description="SQLite file of the live conversations (survives a restart).",
    )

    @field_validator("llm_base_url", "discord_api_base_url", "discord_gateway_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """An endpoint must be an http(s)/ws(s) URL; the message never repeats the value, which
        may hold a password."""
        if value is None or not value.strip():
            return None if info.field_name == "llm_base_url" else _DEFAULT_URLS[info.field_name]
        value = value.strip()
        gateway = info.field_name == "discord_gateway_url"
        schemes = ("ws://", "wss://") if gateway else ("http://", "https://")
        if not value.lower().startswith(schemes):
            raise ValueError(f"must be a URL starting with {' or '.join(schemes)}")
        return value

    _ids = field_validator(
        "discord_guild_ids", "discord_admin_user_ids", "discord_shard_ids", mode="before"
    )(classmethod(lambda cls, v: _id_list(v)))

    @field_validator("discord_shard_count", mode="before")
    @classmethod
    def _blank_is_auto(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _shards(self) -> Settings:
        if self.discord_shard_ids:
            if self.discord_shard_count is None:
                raise ValueError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT")
            if any(not 0 <= i < self.discord_shard_count for i in self.discord_shard_ids):
                raise ValueError("DISCORD_SHARD_IDS must be below DISCORD_SHARD_COUNT")
        return self

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_base_url and self.llm_model)
