#!/usr/bin/env python3
"""Regenerates actors/data/prices.txt, openclaw-trace's built-in model prices.

The prices come from LiteLLM's public catalog, model_prices_and_context_window.json.
The daemon has no internet access when this runs in CI or on a build machine,
but the package registry is reachable, and every litellm wheel carries a copy
of the catalog (litellm/model_prices_and_context_window_backup.json). So this
script downloads the wheel with pip (no dependencies), reads the catalog out of
it, keeps the chat models of the providers an OpenClaw agent plausibly uses,
and writes them in the format TRACE_PRICES_FILE uses.

    python3 scripts/update-prices.py                  # latest litellm
    python3 scripts/update-prices.py --litellm 1.2.3  # a given version
    python3 scripts/update-prices.py --wheel litellm-1.2.3-...whl

Python 3 standard library only.

The model names written are the ones openclaw-trace's lookup
(actors/src/prices.rs) falls back to: lower case, without a provider path, and
without a trailing date or version when every dated variant costs the same.
`candidates` below must stay the same as `candidates` in prices.rs: the script
checks that every catalog model it keeps is priced as the catalog says when
looked up the way the daemon looks it up.
"""

import argparse
import datetime
import decimal
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import zipfile

CATALOG = "litellm/model_prices_and_context_window_backup.json"
OUTPUT = pathlib.Path(__file__).resolve().parent.parent / "actors" / "data" / "prices.txt"

# LiteLLM's provider name -> the provider name written (the canonical name
# prices.rs maps its aliases to). Providers not listed are left out.
PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "vertex_ai": "vertex",
    "vertex_ai-anthropic_models": "vertex",
    "vertex_ai-language-models": "vertex",
    "vertex_ai-mistral_models": "vertex",
    "vertex_ai-deepseek_models": "vertex",
    "vertex_ai-llama_models": "vertex",
    "vertex_ai-openai_models": "vertex",
    "vertex_ai-qwen_models": "vertex",
    "vertex_ai-zai_models": "vertex",
    "vertex_ai-moonshot_models": "vertex",
    "vertex_ai-minimax_models": "vertex",
    "bedrock": "bedrock",
    "bedrock_converse": "bedrock",
    "azure": "azure",
    "mistral": "mistral",
    "codestral": "mistral",
    "deepseek": "deepseek",
    "xai": "xai",
    "groq": "groq",
    "openrouter": "openrouter",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "cerebras": "cerebras",
    "moonshot": "moonshot",
    "zai": "zai",
    "minimax": "minimax",
}

# The order providers are written in: model makers first, then clouds, then hosts.
PROVIDER_ORDER = [
    "openai", "anthropic", "google", "xai", "deepseek", "mistral", "moonshot", "zai",
    "minimax", "cohere", "perplexity", "vertex", "azure", "bedrock", "groq", "cerebras",
    "together", "fireworks", "openrouter",
]

# The model column's width in the file written.
MODEL_WIDTH = 26

MODES = {"chat", "completion", "responses"}

# Bedrock's cross-region inference profiles (`us.anthropic.claude-...`).
REGIONS = {"us", "eu", "apac", "au", "jp", "global", "us-gov", "in", "ca"}


# --- the lookup's candidate names (keep in step with prices.rs) -------------

SUFFIXES = [
    re.compile(r"-v[0-9]+:[0-9]+\Z"),              # bedrock's model version: -v1:0
    re.compile(r":[a-z0-9._-]+\Z"),                # a tag: :0, :free, :thinking
    re.compile(r"@[a-z0-9]+\Z"),                   # vertex's version: @20250929, @default
    re.compile(r"-[0-9]{8}\Z"),                    # -20250929
    re.compile(r"-[0-9]{4}-[0-9]{2}-[0-9]{2}\Z"),  # -2024-08-06
    re.compile(r"-[0-9]{2}-[0-9]{4}\Z"),           # -09-2025
    re.compile(r"-[0-9]{3,4}\Z"),                  # -001, -0613, -2512
]
DOTTED_PREFIX = re.compile(r"([a-z-]*[a-z][a-z-]*)\.(.+)", re.DOTALL)


def strip_suffix(name):
    """The name without one trailing date or version, or None."""
    for pattern in SUFFIXES:
        m = pattern.search(name)
        if m and m.start() > 0:
            return name[: m.start()]
    return None


def strip_dotted_prefix(name):
    """`us.anthropic.claude-x` -> `anthropic.claude-x` -> `claude-x`."""
    m = DOTTED_PREFIX.fullmatch(name)
    return m.group(2) if m else None


def candidates(name):
    """The names the lookup tries for `name` (lower case, no provider path), in order."""
    bases = [name]
    while len(bases) < 3:
        rest = strip_dotted_prefix(bases[-1])
        if rest is None:
            break
        bases.append(rest)
    out = []
    for base in bases:
        out.append(base)
        current = base
        for _ in range(4):
            current = strip_suffix(current)
            if current is None:
                break
            out.append(current)
    out += [n.replace(".", "-") for n in list(out) if "." in n]
    return out


# The same examples as prices.rs's `candidate_names_follow_the_documented_rules`.
EXAMPLES = {
    "gpt-4o": ["gpt-4o"],
    "gpt-4-0613": ["gpt-4-0613", "gpt-4"],
    "gpt-4o-2024-08-06": ["gpt-4o-2024-08-06", "gpt-4o"],
    "claude-sonnet-4.5:thinking": [
        "claude-sonnet-4.5:thinking", "claude-sonnet-4.5",
        "claude-sonnet-4-5:thinking", "claude-sonnet-4-5",
    ],
    "gemini-2.5-flash-preview-09-2025": [
        "gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash-preview",
        "gemini-2-5-flash-preview-09-2025", "gemini-2-5-flash-preview",
    ],
    "us.anthropic.claude-x-20250929-v1:0": [
        "us.anthropic.claude-x-20250929-v1:0", "us.anthropic.claude-x-20250929",
        "us.anthropic.claude-x", "anthropic.claude-x-20250929-v1:0",
        "anthropic.claude-x-20250929", "anthropic.claude-x", "claude-x-20250929-v1:0",
        "claude-x-20250929", "claude-x", "us-anthropic-claude-x-20250929-v1:0",
        "us-anthropic-claude-x-20250929", "us-anthropic-claude-x",
        "anthropic-claude-x-20250929-v1:0", "anthropic-claude-x-20250929",
        "anthropic-claude-x",
    ],
    "-0613": ["-0613"],
    "x-12345": ["x-12345"],
}


def check_candidates():
    for name, expected in EXAMPLES.items():
        got = candidates(name)
        if got != expected:
            sys.exit(f"update-prices: candidates({name!r}) = {got}, prices.rs expects {expected}")


# --- reading the catalog -----------------------------------------------------

def download_wheel(version, directory):
    spec = f"litellm=={version}" if version else "litellm"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", spec, "--no-deps", "--only-binary=:all:",
         "--quiet", "-d", str(directory)],
        check=True,
    )
    wheels = sorted(pathlib.Path(directory).glob("litellm-*.whl"))
    if not wheels:
        sys.exit("update-prices: pip downloaded no litellm wheel")
    return wheels[-1]


def read_wheel(path):
    """(catalog, litellm version) from a litellm wheel."""
    with zipfile.ZipFile(path) as wheel:
        catalog = json.loads(wheel.read(CATALOG))
        version = None
        for member in wheel.namelist():
            if re.fullmatch(r"litellm-[^/]+\.dist-info/METADATA", member):
                for line in wheel.read(member).decode("utf-8").splitlines():
                    if line.startswith("Version:"):
                        version = line.split(":", 1)[1].strip()
                        break
    if not version:
        sys.exit(f"update-prices: no version in {path}")
    return catalog, version


def per_million(cost):
    """USD per token -> USD per 1M tokens, at most 6 significant digits, as written."""
    if cost is None:
        return "-"
    value = decimal.Decimal(repr(float(cost))) * 1_000_000
    text = format(value, ".6g")
    value = decimal.Decimal(text)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def retired(spec, date):
    """Whether LiteLLM says the model was shut down before `date`."""
    when = spec.get("deprecation_date")
    return isinstance(when, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", when) is not None and when < date


def chat_models(catalog, date):
    """Yields (provider, name, key, prices) for every token-priced chat model kept."""
    for key, spec in catalog.items():
        if not isinstance(spec, dict) or key == "sample_spec":
            continue
        if "alias_of" in spec:
            target = catalog.get(spec["alias_of"])
            if not isinstance(target, dict) or "alias_of" in target:
                continue
            spec = target
        provider = PROVIDERS.get(spec.get("litellm_provider"))
        if provider is None:
            continue
        mode = spec.get("mode")
        if mode is not None and mode not in MODES:
            continue
        if retired(spec, date):
            continue
        if not (number(spec.get("input_cost_per_token")) and number(spec.get("output_cost_per_token"))):
            continue
        # Priced at 0 per token: free, or priced some other way (per image,
        # per second). Left out, so that its cost stays unknown, not zero.
        if spec["input_cost_per_token"] == 0 and spec["output_cost_per_token"] == 0:
            continue
        lowered = key.lower()
        # Fine-tunes, reserved capacity, and size tiers that are not model names.
        if lowered.startswith("ft:") or "commitment" in lowered:
            continue
        if re.match(r"(together-ai|fireworks-ai)-", lowered):
            continue
        name = lowered.rsplit("/", 1)[-1]
        if not name or not name.isascii() or "*" in name or "#" in name or any(c.isspace() for c in name):
            continue
        cache_read = spec.get("cache_read_input_token_cost")
        cache_write = spec.get("cache_creation_input_token_cost")
        prices = (
            per_million(spec["input_cost_per_token"]),
            per_million(spec["output_cost_per_token"]),
            per_million(cache_read if number(cache_read) else None),
            per_million(cache_write if number(cache_write) else None),
        )
        yield provider, name, key, prices


def region_stripped(name):
    head, dot, rest = name.partition(".")
    return rest if dot and head in REGIONS and rest else name


def base_of(name):
    """The name an entry's group is written under: no region, no trailing dates."""
    current = region_stripped(name)
    for _ in range(4):
        stripped = strip_suffix(current)
        if stripped is None:
            break
        current = stripped
    return current


def select(catalog, date):
    """{provider: {name: prices}} to write, and counts for the summary."""
    # One entry per provider and name: a name found under several keys
    # (`azure/gpt-4o`, `azure/eu/gpt-4o`) is the one with the shortest path.
    chosen = {}
    collisions = 0
    for provider, name, key, prices in chat_models(catalog, date):
        rank = (key.count("/"), len(key), key)
        slot = (provider, name)
        if slot in chosen:
            collisions += 1
            if chosen[slot][0] <= rank:
                continue
        chosen[slot] = (rank, prices)
    by_provider = {}
    for (provider, name), (_, prices) in chosen.items():
        by_provider.setdefault(provider, {})[name] = prices

    table = {}
    for provider, models in by_provider.items():
        written = {}
        # Each group (the same model with and without dates, versions or a
        # region) is written once under its base name, at the price of the
        # base itself if the catalog has it, else of its newest variant.
        groups = {}
        for name in models:
            groups.setdefault(base_of(name), []).append(name)
        for base, names in groups.items():
            if base in models:
                rep = base
            else:
                rep = max(names, key=lambda n: (region_stripped(n) == n, n))
            written[base] = models[rep]
        # Then every model the lookup would misprice is written by its own name,
        # until none is.
        changed = True
        while changed:
            changed = False
            for name in sorted(models, key=lambda n: (len(n), n)):
                found = next((written[c] for c in candidates(name) if c in written), None)
                if found != models[name]:
                    written[name] = models[name]
                    changed = True
        table[provider] = written
    return table, collisions


def render(table, version, date):
    lines = [
        "# openclaw-trace model prices, USD per 1M tokens.",
        f"# source: LiteLLM model_prices_and_context_window.json (litellm {version}), "
        f"generated {date} by scripts/update-prices.py",
        "# Chat models at their standard rates: no tiered (above 200k tokens), batch,",
        "# priority or flex rates, and Azure's and Bedrock's per-region endpoints at the",
        "# default price (Bedrock's us./eu./... inference profiles keep their own).",
        "# Left out: models LiteLLM lists as retired by that date, and models at 0 per token.",
        "# Regenerate rather than edit; put your own prices in the file TRACE_PRICES_FILE",
        "# names, in this same format.",
        "# provider  model  input  output  cache_read  cache_write     (\"-\" = not priced separately)",
    ]
    providers = sorted(table, key=lambda p: (PROVIDER_ORDER.index(p) if p in PROVIDER_ORDER else 99, p))
    # Columns line up for reading; a longer name just pushes its line's
    # prices to the right, which keeps the file small.
    provider_width = max(len(p) for p in providers)
    for provider in providers:
        models = table[provider]
        lines.append("")
        for model in sorted(models):
            cols = " ".join(models[model])
            lines.append(f"{provider.ljust(provider_width)} {model.ljust(MODEL_WIDTH)} {cols}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--litellm", help="the litellm version to read (default: the latest)")
    parser.add_argument("--wheel", type=pathlib.Path, help="a litellm wheel already downloaded")
    parser.add_argument("--output", type=pathlib.Path, default=OUTPUT)
    parser.add_argument("--date", help="the generation date written (default: today, UTC)")
    args = parser.parse_args()
    check_candidates()

    if args.wheel:
        catalog, version = read_wheel(args.wheel)
    else:
        with tempfile.TemporaryDirectory(prefix="update-prices-") as tmp:
            catalog, version = read_wheel(download_wheel(args.litellm, tmp))
    date = args.date or datetime.datetime.now(datetime.timezone.utc).date().isoformat()

    table, collisions = select(catalog, date)
    text = render(table, version, date)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    entries = sum(len(m) for m in table.values())
    print(
        f"update-prices: litellm {version}: {entries} entries from {len(table)} providers "
        f"({collisions} same-name variants merged), {len(text.encode())} bytes -> {args.output}"
    )


if __name__ == "__main__":
    main()
