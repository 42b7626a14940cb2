"""Which hosts are AI providers, and which API shapes each one speaks.

One table serves three purposes: the decoder picks a provider from the Host (and
the port, for local servers), the relay decides what to decrypt (everything else is
tunnelled untouched), and the CA's nameConstraints are derived from it — so adding
a provider here is the only change needed to intercept it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# The API shapes an OpenAI-compatible server may speak, most specific first.
OPENAI_APIS = ("openai.responses", "openai.chat", "openai.completions", "openai.embeddings")

# Regional endpoints cannot be matched by one name constraint, so they are listed.
_BEDROCK_REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "me-central-1",
    "me-south-1",
    "il-central-1",
    "af-south-1",
    "us-gov-west-1",
    "us-gov-east-1",
)
_VERTEX_REGIONS = (
    "us-central1",
    "us-east1",
    "us-east4",
    "us-east5",
    "us-south1",
    "us-west1",
    "us-west4",
    "northamerica-northeast1",
    "southamerica-east1",
    "europe-west1",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "europe-west6",
    "europe-west8",
    "europe-west9",
    "europe-north1",
    "europe-central2",
    "europe-southwest1",
    "asia-east1",
    "asia-east2",
    "asia-northeast1",
    "asia-northeast3",
    "asia-south1",
    "asia-southeast1",
    "australia-southeast1",
    "me-central1",
    "me-central2",
    "me-west1",
)


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A provider: `hosts` are exact names, or `*.suffix` for any subdomain of suffix."""

    id: str  # our name, e.g. "deepseek"
    oisp_name: str  # the spec's enum value ("other" when the spec has none)
    hosts: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()  # local model servers, recognised by port
    apis: tuple[str, ...] = OPENAI_APIS
    display: str = ""
    scheme: str = "https"

    def matches_host(self, host: str) -> bool:
        for pattern in self.hosts:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]):
                    return True
            elif host == pattern:
                return True
        return False

    def constraint_names(self) -> list[str]:
        """DNS names for X.509 nameConstraints (each also permits its subdomains)."""
        return [h[2:] if h.startswith("*.") else h for h in self.hosts]


BUILTIN_PROVIDERS: tuple[ProviderSpec, ...] = (
    ProviderSpec("openai", "openai", ("api.openai.com",), display="OpenAI"),
    ProviderSpec(
        "azure_openai",
        "azure_openai",
        ("*.openai.azure.com", "*.cognitiveservices.azure.com", "*.services.ai.azure.com"),
        display="Azure OpenAI",
    ),
    ProviderSpec(
        "anthropic",
        "anthropic",
        ("api.anthropic.com",),
        apis=("anthropic.messages",),
        display="Anthropic",
    ),
    ProviderSpec(
        "google",
        "google",
        (
            "generativelanguage.googleapis.com",
            "aiplatform.googleapis.com",
            *(f"{r}-aiplatform.googleapis.com" for r in _VERTEX_REGIONS),
        ),
        apis=("gemini", *OPENAI_APIS),  # …/v1beta/openai/chat/completions too
        display="Google Gemini",
    ),
    ProviderSpec(
        "aws_bedrock",
        "aws_bedrock",
        tuple(f"bedrock-runtime.{r}.amazonaws.com" for r in _BEDROCK_REGIONS)
        + tuple(f"bedrock-runtime-fips.{r}.amazonaws.com" for r in _BEDROCK_REGIONS[:4]),
        apis=("bedrock.converse", "bedrock.invoke"),
        display="AWS Bedrock",
    ),
    ProviderSpec(
        "mistral", "mistral", ("api.mistral.ai", "codestral.mistral.ai"), display="Mistral"
    ),
    ProviderSpec("groq", "groq", ("api.groq.com",), display="Groq"),
    ProviderSpec(
        "cohere",
        "cohere",
        ("api.cohere.com", "api.cohere.ai"),
        apis=("cohere.chat", "cohere.embed", "openai.chat", "openai.embeddings"),
        display="Cohere",
    ),
    ProviderSpec("deepseek", "other", ("api.deepseek.com",), display="DeepSeek"),
    ProviderSpec("xai", "other", ("api.x.ai",), apis=("xai.chat", *OPENAI_APIS), display="xAI"),
    ProviderSpec(
        "together", "together", ("api.together.xyz", "api.together.ai"), display="Together AI"
    ),
    ProviderSpec("fireworks", "fireworks", ("api.fireworks.ai",), display="Fireworks AI"),
    ProviderSpec(
        "perplexity",
        "other",
        ("api.perplexity.ai",),
        apis=("perplexity.chat", *OPENAI_APIS),
        display="Perplexity",
    ),
    ProviderSpec("openrouter", "other", ("openrouter.ai",), display="OpenRouter"),
    ProviderSpec(
        "ollama",
        "ollama",
        ports=(11434,),
        scheme="http",
        apis=("ollama.chat", "ollama.generate", "ollama.embed", *OPENAI_APIS),
        display="Ollama",
    ),
    ProviderSpec("lmstudio", "lmstudio", ports=(1234,), scheme="http", display="LM Studio"),
)

OISP_PROVIDER_NAMES = frozenset(
    {
        "openai",
        "anthropic",
        "google",
        "azure_openai",
        "aws_bedrock",
        "cohere",
        "mistral",
        "groq",
        "together",
        "fireworks",
        "replicate",
        "huggingface",
        "ollama",
        "lmstudio",
        "vllm",
        "other",
    }
)


class ProviderRegistry:
    """Built-in providers plus the user's custom endpoints (which win on a tie)."""

    def __init__(self, extra: Iterable[ProviderSpec] = ()) -> None:
        self.providers: tuple[ProviderSpec, ...] = (*extra, *BUILTIN_PROVIDERS)
        self._exact: dict[str, ProviderSpec] = {}
        self._wild: list[ProviderSpec] = []
        self._ports: dict[int, ProviderSpec] = {}
        for spec in reversed(self.providers):  # earlier entries overwrite later ones
            for host in spec.hosts:
                if host.startswith("*."):
                    self._wild.insert(0, spec)
                else:
                    self._exact[host] = spec
            for port in spec.ports:
                self._ports[port] = spec
        self._cache: dict[tuple[str, int | None], ProviderSpec | None] = {}

    def detect(self, host: str | None, port: int | None = None) -> ProviderSpec | None:
        """The provider serving `host[:port]`, or None for anything that is not AI."""
        if not host:
            return self._ports.get(port) if port else None
        key = (host, port)
        if key in self._cache:
            return self._cache[key]
        name = host.lower().rstrip(".")
        spec = self._exact.get(name)
        if spec is None:
            spec = next((s for s in self._wild if s.matches_host(name)), None)
        if spec is None and port is not None:
            spec = self._ports.get(port)
        if len(self._cache) < 4096:
            self._cache[key] = spec
        return spec

    def is_ai_host(self, host: str, port: int | None = None) -> bool:
        return self.detect(host, port) is not None

    def constraint_names(self) -> list[str]:
        """Every DNS name the local CA may sign for, sorted and de-duplicated."""
        names = {n for spec in self.providers for n in spec.constraint_names()}
        return sorted(names)
