"""The platform catalog model-registry-service seeds on every start (see ``docs/models.md``).

Each price carries the provider's pricing page it was read from (``source``) and the day it
was taken (``effective_from``, midnight UTC; where the provider announced the day a price took
effect, that day). Seeding only adds what is missing: a model by provider and name, a price by
model and ``effective_from``. To refresh a price, **add** an entry with a later
``effective_from``; never edit or remove one already shipped (it has priced usage).

Figures are USD per million tokens, as strings (money is never a float). ``cached`` is the
price of a cached input token (a cache read); ``None`` means cached tokens are priced as input.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

#: the day the figures below were taken from the pages they name
TAKEN = "2026-11-28T00:00:00+00:00"

OPENAI = "https://developers.openai.com/api/docs/pricing"
ANTHROPIC = "https://platform.claude.com/docs/en/about-claude/pricing"
GOOGLE = "https://ai.google.dev/gemini-api/docs/pricing"
MISTRAL = "https://mistral.ai/pricing"
GROQ = "https://groq.com/pricing"


@dataclass(frozen=True, slots=True)
class SeedPrice:
    input: str
    output: str
    cached: str | None
    source: str
    effective_from: str = TAKEN


@dataclass(frozen=True, slots=True)
class SeedModel:
    provider: str
    name: str
    display_name: str
    modality: str
    capabilities: tuple[str, ...]
    context_window: int
    max_output_tokens: int | None
    prices: tuple[SeedPrice, ...]
    deprecation_date: date | None = None
    #: ``<provider>/<name>`` of a model in this list
    successor: str | None = None


CHAT_TOOLS_VISION = ("chat", "tools", "vision", "json_mode", "prompt_caching")
CLAUDE = ("chat", "tools", "vision", "reasoning", "prompt_caching", "pdf_input")

# fmt: off
# provider, name, display name, modality, capabilities, context window, max output, prices
CATALOG: tuple[SeedModel, ...] = (
    # ------------------------------------------------------------------ OpenAI
    SeedModel(
        "openai", "gpt-4o", "GPT-4o", "multimodal", CHAT_TOOLS_VISION, 128_000, 16_384,
        (SeedPrice("2.50", "10.00", "1.25", OPENAI),),
    ),
    SeedModel(
        "openai", "gpt-4o-mini", "GPT-4o mini", "multimodal", CHAT_TOOLS_VISION, 128_000, 16_384,
        (SeedPrice("0.15", "0.60", "0.075", OPENAI),),
    ),
    SeedModel(
        "openai", "gpt-4.1", "GPT-4.1", "multimodal", CHAT_TOOLS_VISION, 1_047_576, 32_768,
        (SeedPrice("2.00", "8.00", "0.50", OPENAI),),
    ),
    SeedModel(
        "openai", "gpt-4.1-mini", "GPT-4.1 mini", "multimodal", CHAT_TOOLS_VISION,
        1_047_576, 32_768,
        (SeedPrice("0.40", "1.60", "0.10", OPENAI),),
    ),
    SeedModel(
        "openai", "gpt-4.1-nano", "GPT-4.1 nano", "multimodal", CHAT_TOOLS_VISION,
        1_047_576, 32_768,
        (SeedPrice("0.10", "0.40", "0.025", OPENAI),),
    ),
    SeedModel(
        "openai", "text-embedding-3-small", "Text Embedding 3 Small", "embedding",
        ("embeddings",), 8_191, None,
        (SeedPrice("0.02", "0", None, OPENAI),),
    ),
    SeedModel(
        "openai", "text-embedding-3-large", "Text Embedding 3 Large", "embedding",
        ("embeddings",), 8_191, None,
        (SeedPrice("0.13", "0", None, OPENAI),),
    ),
    # ------------------------------------------------------------------ Anthropic
    SeedModel(
        "anthropic", "claude-opus-4-5", "Claude Opus 4.5", "multimodal", CLAUDE, 200_000, 64_000,
        (SeedPrice("5", "25", "0.50", ANTHROPIC),),
    ),
    SeedModel(
        "anthropic", "claude-sonnet-5", "Claude Sonnet 5", "multimodal", CLAUDE,
        1_000_000, 128_000,
        (SeedPrice("2", "10", "0.20", ANTHROPIC),),
    ),
    SeedModel(
        "anthropic", "claude-sonnet-5-5", "Claude Sonnet 5.5", "multimodal", CLAUDE,
        1_000_000, 128_000,
        # cache reads cut from 0.20 to 0.10 per million tokens on 2026-10-07
        (SeedPrice("2", "10", "0.10", ANTHROPIC, "2026-10-07T00:00:00+00:00"),),
    ),
    SeedModel(
        "anthropic", "claude-sonnet-4-5", "Claude Sonnet 4.5", "multimodal", CLAUDE,
        200_000, 64_000,
        (SeedPrice("3", "15", "0.30", ANTHROPIC),),
        deprecation_date=date(2026, 11, 30),
        successor="anthropic/claude-sonnet-5-5",
    ),
    SeedModel(
        "anthropic", "claude-haiku-4-5", "Claude Haiku 4.5", "multimodal", CLAUDE,
        200_000, 64_000,
        (SeedPrice("1", "5", "0.10", ANTHROPIC),),
    ),
    # ------------------------------------------------------------------ Google
    SeedModel(
        "google", "gemini-2.5-flash", "Gemini 2.5 Flash", "multimodal",
        ("chat", "tools", "vision", "json_mode", "reasoning", "prompt_caching", "audio_input"),
        1_048_576, 65_536,
        (SeedPrice("0.30", "2.50", "0.03", GOOGLE),),
    ),
    SeedModel(
        "google", "gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", "multimodal",
        ("chat", "tools", "vision", "json_mode", "reasoning", "prompt_caching", "audio_input"),
        1_048_576, 65_536,
        (SeedPrice("0.10", "0.40", "0.01", GOOGLE),),
    ),
    # ------------------------------------------------------------------ Mistral
    SeedModel(
        "mistral", "mistral-small-latest", "Mistral Small", "text",
        ("chat", "tools", "json_mode"), 128_000, None,
        (SeedPrice("0.10", "0.30", None, MISTRAL),),
    ),
    SeedModel(
        "mistral", "codestral-latest", "Codestral", "text",
        ("chat", "completion", "tools", "json_mode"), 256_000, None,
        (SeedPrice("0.30", "0.90", None, MISTRAL),),
    ),
    SeedModel(
        "mistral", "mistral-embed", "Mistral Embed", "embedding", ("embeddings",), 8_192, None,
        (SeedPrice("0.10", "0", None, MISTRAL),),
    ),
    # ------------------------------------------------------------------ Meta Llama on Groq
    SeedModel(
        "groq", "llama-3.3-70b-versatile", "Llama 3.3 70B Versatile (Groq)", "text",
        ("chat", "tools", "json_mode"), 131_072, 32_768,
        (SeedPrice("0.59", "0.79", None, GROQ),),
    ),
    SeedModel(
        "groq", "llama-3.1-8b-instant", "Llama 3.1 8B Instant (Groq)", "text",
        ("chat", "tools", "json_mode"), 131_072, 131_072,
        (SeedPrice("0.05", "0.08", None, GROQ),),
    ),
)
# fmt: on
