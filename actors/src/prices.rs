//! Model prices, to estimate what an LLM call cost when the agent did not
//! say (OpenClaw exports cost only as a metric, and only when it knows a
//! price: COMPAT.md section 3).
//!
//! The built-in table is `actors/data/prices.txt`, compiled in. It is
//! generated from LiteLLM's public model catalog by
//! `scripts/update-prices.py`; its `# source:` line says which litellm
//! release and when. A file in the same format (`TRACE_PRICES_FILE`) replaces
//! built-in entries and adds its own: [`PriceTable::load`].
//!
//! # The format
//!
//! One price a line, whitespace-separated, `#` starts a comment:
//!
//! ```text
//! # provider  model              input  output  cache_read  cache_write
//! anthropic   claude-sonnet-4-5  3      15      0.3         3.75
//! openai      gpt-4o*            2.5    10      1.25        -
//! *           my-local-model     0      0
//! ```
//!
//! Prices are USD per 1M tokens. `cache_read` and `cache_write` may be `-`
//! or left off: such tokens are then priced as input. A model ending in `*`
//! is a prefix pattern; provider `*` is any provider. Names are matched
//! without regard to case, and providers by their canonical name (`gemini`
//! and `google-ai-studio` are `google`, `amazon-bedrock` is `bedrock`...).
//!
//! # Lookup
//!
//! Agents name models loosely (`openrouter/anthropic/claude-sonnet-4.5`,
//! `models/gemini-2.5-pro`, `us.anthropic.claude-sonnet-4-5-20250929-v1:0`),
//! so [`PriceTable::lookup`] tries, in order, a fixed list of names derived
//! from the model: the name after its last `/`; then without a trailing date
//! or version (`-20250929`, `-2024-08-06`, `-v1:0`, `@20250929`, `-0613`,
//! `:free`); then without Bedrock's dotted region and vendor prefixes
//! (`us.`, `anthropic.`); then with dots written as hyphens
//! (`claude-sonnet-4.5`). The providers tried, in order, are the reported
//! one, a provider named in the model's path (`anthropic/` in
//! `openrouter/anthropic/...`) and provider `*`; under each, the first of
//! those names priced exactly wins, else the longest `*` pattern one of them
//! starts with. Last comes the first of those names that any provider prices
//! exactly (model makers first, then clouds, then hosts). A lookup takes a
//! few small allocations, hash lookups and binary searches (one per provider
//! for a name no provider of its own prices); the rollups keep what a lookup
//! found per provider and model, so each pair is looked up once.
//! `scripts/update-prices.py` writes names this lookup finds, and checks that
//! every model it keeps is found at its catalog price.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The built-in table.
const BUILTIN: &str = include_str!("../data/prices.txt");

/// Largest price accepted, in USD per 1M tokens: far above any real one,
/// and small enough that no token count can make an estimate overflow.
const MAX_PRICE: f64 = 1_000_000.0;

/// The provider that stands for any provider in a price file.
const ANY: &str = "*";

/// Canonical providers in the order the "any provider" fallback prefers them:
/// the model makers, then clouds reselling their models, then hosts. The
/// same order as `PROVIDER_ORDER` in `scripts/update-prices.py`.
const PROVIDER_RANK: &[&str] = &[
    "openai",
    "anthropic",
    "google",
    "xai",
    "deepseek",
    "mistral",
    "moonshot",
    "zai",
    "minimax",
    "cohere",
    "perplexity",
    "vertex",
    "azure",
    "bedrock",
    "groq",
    "cerebras",
    "together",
    "fireworks",
    "openrouter",
];

/// The canonical name of a provider (already lower case): OpenClaw's
/// provider ids, OpenTelemetry's `gen_ai.system` values and LiteLLM's names
/// all map to one name each. Unknown names are their own canonical name.
fn canonical_provider(provider: &str) -> &str {
    match provider {
        "openai" | "openai-codex" | "openai-responses" | "text-completion-openai" => "openai",
        "anthropic" => "anthropic",
        "google" | "gemini" | "google-ai-studio" | "google_ai_studio" | "google-genai"
        | "google-gemini-cli" | "google-antigravity" | "gcp.gemini" | "gcp.gen_ai" => "google",
        "vertex" | "vertex_ai" | "vertex-ai" | "vertexai" | "google-vertex" | "gcp.vertex_ai" => {
            "vertex"
        }
        "bedrock" | "amazon-bedrock" | "amazon_bedrock" | "aws-bedrock" | "aws.bedrock"
        | "bedrock_converse" => "bedrock",
        "azure"
        | "azure-openai"
        | "azure_openai"
        | "azure-openai-responses"
        | "az.ai.openai"
        | "azure.ai.openai" => "azure",
        "xai" | "x-ai" | "x_ai" | "x.ai" => "xai",
        "mistral" | "mistralai" | "mistral_ai" | "mistral-ai" | "codestral" => "mistral",
        "together" | "together_ai" | "together-ai" | "togetherai" => "together",
        "fireworks" | "fireworks_ai" | "fireworks-ai" | "fireworksai" => "fireworks",
        "cohere" | "cohere_chat" => "cohere",
        "moonshot" | "moonshotai" | "moonshot-ai" | "kimi" | "kimi-coding" => "moonshot",
        "zai" | "z-ai" | "z.ai" | "zai-org" | "zhipu" | "zhipuai" => "zai",
        "minimax" | "minimax-cn" | "minimaxai" => "minimax",
        "openrouter" | "open-router" => "openrouter",
        other => other,
    }
}

/// What one model costs, in USD per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Input tokens neither read from nor written to the prompt cache.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Input tokens read from the prompt cache; `None`: priced as input.
    pub cache_read: Option<f64>,
    /// Input tokens written to the prompt cache; `None`: priced as input.
    pub cache_write: Option<f64>,
}

impl Rates {
    /// What `usage` costs at these rates, in USD. A missing or negative
    /// count is no tokens; each token is priced once, at its own rate.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let tokens = |n: Option<i64>| n.unwrap_or(0).max(0) as f64;
        (tokens(usage.input) * self.input
            + tokens(usage.output) * self.output
            + tokens(usage.cache_read) * self.cache_read.unwrap_or(self.input)
            + tokens(usage.cache_write) * self.cache_write.unwrap_or(self.input))
            / 1e6
    }
}

/// The tokens of one call (or of an interval), as `llm_calls` stores them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Uncached input tokens (`llm_calls.prompt_tokens`).
    pub input: Option<i64>,
    /// Output tokens (`llm_calls.completion_tokens`).
    pub output: Option<i64>,
    /// Input tokens read from the prompt cache.
    pub cache_read: Option<i64>,
    /// Input tokens written to the prompt cache.
    pub cache_write: Option<i64>,
}

/// A price file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// A line that is not a price.
    #[error("{}line {line}, field {field}: {problem}", file_prefix(.file.as_deref()))]
    Line {
        /// The file, when the text came from one.
        file: Option<PathBuf>,
        /// Counted from 1.
        line: usize,
        /// `provider`, `model`, `input`, `output`, `cache_read`,
        /// `cache_write`, or `end of line` for a field too many.
        field: &'static str,
        /// What is wrong and what is accepted.
        problem: String,
    },
    /// The file could not be read.
    #[error("{}: {source}", .file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn file_prefix(file: Option<&Path>) -> String {
    file.map(|f| format!("{}: ", f.display()))
        .unwrap_or_default()
}

impl PriceError {
    fn in_file(self, path: &Path) -> PriceError {
        match self {
            PriceError::Line {
                line,
                field,
                problem,
                ..
            } => PriceError::Line {
                file: Some(path.to_path_buf()),
                line,
                field,
                problem,
            },
            read => read,
        }
    }
}

/// A model name in a table: a slice of the built-in text, which is compiled
/// in, or a copy of an override file's.
type Name = Cow<'static, str>;

/// Model names and their rates, sorted by name once built ([`sort_names`]):
/// a slice, not a hash map, and names that point into the built-in text,
/// hold the built-in table in about 70 bytes an entry.
type Priced = Vec<(Name, Rates)>;

/// The rates of `name` in `priced` (sorted by [`sort_names`]).
fn find_name<'p>(priced: &'p [(Name, Rates)], name: &str) -> Option<&'p Rates> {
    priced
        .binary_search_by(|(n, _)| n.as_ref().cmp(name))
        .ok()
        .map(|at| &priced[at].1)
}

/// Sorts by name; of names given twice, the last given stays.
fn sort_names(priced: &mut Priced) {
    // Stable: equal names keep the order they were given in.
    priced.sort_by(|a, b| a.0.cmp(&b.0));
    // `later` is removed when it names what `kept` names; its rates, given
    // after, replace the kept ones.
    priced.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 = later.1;
        }
        same
    });
    priced.shrink_to_fit();
}

/// The prices of one provider.
#[derive(Debug, Clone, Default)]
struct ProviderPrices {
    /// Model name (lower case) → rates, sorted by name.
    exact: Priced,
    /// `*` patterns without their star, longest first, so the first match
    /// is the longest.
    patterns: Vec<(Name, Rates)>,
}

impl ProviderPrices {
    /// The rates of the first of `names` priced exactly, else of the
    /// longest pattern any of them starts with.
    fn find(&self, names: &[Cow<'_, str>]) -> Option<&Rates> {
        names
            .iter()
            .find_map(|n| find_name(&self.exact, n))
            .or_else(|| {
                self.patterns
                    .iter()
                    .find(|(prefix, _)| names.iter().any(|n| n.starts_with(prefix.as_ref())))
                    .map(|(_, rates)| rates)
            })
    }

    fn insert_pattern(&mut self, prefix: Name, rates: Rates) {
        match self.patterns.iter_mut().find(|(p, _)| *p == prefix) {
            Some(slot) => slot.1 = rates,
            None => self.patterns.push((prefix, rates)),
        }
        self.patterns
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    }
}

/// Model prices: the built-in table, with a user's overrides if any.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    /// Canonical provider (or `*`) → its prices.
    providers: HashMap<String, ProviderPrices>,
    /// The canonical providers but `*`, best-ranked first: the "same model
    /// under any provider" fallback takes the rates of the first that
    /// prices the model exactly. A binary search per provider, paid once
    /// per provider and model (the rollups keep what a lookup found); a
    /// table of every name's best rates beside the providers' took 58 kB
    /// of the idle daemon's memory.
    ranked: Vec<String>,
    /// Where the prices come from: the `# source:` lines' text.
    source: String,
}

impl PriceTable {
    /// The built-in table, parsed (about a millisecond). Not kept in a
    /// static: the daemon parses it once at start and holds that one copy;
    /// a static beside it doubled the table's share of the idle RSS.
    /// Its model names point into the compiled-in text.
    pub fn builtin() -> PriceTable {
        PriceTable::parse_with(BUILTIN, Cow::Borrowed)
            .expect("the built-in price table parses: a unit test checks it")
    }

    /// Reads a table in the price file format; the error names the line
    /// and the field at fault.
    pub fn parse(text: &str) -> Result<PriceTable, PriceError> {
        PriceTable::parse_with(text, |name| Cow::Owned(name.to_owned()))
    }

    /// [`PriceTable::parse`], keeping each lower-case model name of `text`
    /// as `keep` makes it.
    fn parse_with<'t>(
        text: &'t str,
        keep: impl Fn(&'t str) -> Name,
    ) -> Result<PriceTable, PriceError> {
        let mut table = PriceTable::default();
        let mut first_line: HashMap<(String, Name), usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let (content, comment) = raw.split_once('#').unwrap_or((raw, ""));
            if let Some(source) = comment.trim_start().strip_prefix("source:") {
                if content.trim().is_empty() && table.source.is_empty() {
                    table.source = source.trim().to_string();
                }
            }
            let Some(entry) = Entry::parse(content, line)? else {
                continue;
            };
            let model = match entry.model {
                Cow::Borrowed(name) => keep(name),
                Cow::Owned(name) => Cow::Owned(name),
            };
            let entry = Entry {
                provider: entry.provider,
                model,
                rates: entry.rates,
            };
            let key = (entry.provider.clone(), entry.model.clone());
            if let Some(earlier) = first_line.insert(key, line) {
                return Err(line_error(
                    line,
                    "model",
                    format!(
                        "{} {} is already priced on line {earlier}",
                        entry.provider, entry.model
                    ),
                ));
            }
            table.insert(entry);
        }
        table.index();
        Ok(table)
    }

    /// This table with `other`'s entries added; where both price the same
    /// provider and model, `other` wins.
    pub fn with_overrides(mut self, other: PriceTable) -> PriceTable {
        for (provider, prices) in other.providers {
            let mine = self.providers.entry(provider).or_default();
            // Appended after the table's own; sorting keeps the last given.
            mine.exact.extend(prices.exact);
            for (prefix, rates) in prices.patterns {
                mine.insert_pattern(prefix, rates);
            }
        }
        if !other.source.is_empty() {
            self.source = if self.source.is_empty() {
                other.source
            } else {
                format!("{}; {}", self.source, other.source)
            };
        }
        self.index();
        self
    }

    /// The built-in table, with the entries of the file at `overrides`
    /// (`TRACE_PRICES_FILE`) replacing and adding to it. The error names the
    /// file, and the line and field at fault.
    pub fn load(overrides: Option<&Path>) -> Result<PriceTable, PriceError> {
        let builtin = PriceTable::builtin();
        let Some(path) = overrides else {
            return Ok(builtin);
        };
        let text = std::fs::read_to_string(path).map_err(|source| PriceError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        let mut extra = PriceTable::parse(&text).map_err(|e| e.in_file(path))?;
        if extra.source.is_empty() {
            extra.source = format!("overrides from {}", path.display());
        }
        Ok(builtin.with_overrides(extra))
    }

    /// The rates of `model` as `provider` reported it (see the module doc
    /// for the order names are tried in); `None` when nothing matches.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<&Rates> {
        let provider = provider.trim().to_ascii_lowercase();
        let provider = canonical_provider(&provider);
        let model = model.trim().to_ascii_lowercase();
        let (path, name) = model.rsplit_once('/').unwrap_or(("", &model));
        if name.is_empty() {
            return None;
        }
        let names = candidates(name);
        let under = |p: &str| self.providers.get(p).and_then(|prices| prices.find(&names));
        under(provider)
            .or_else(|| {
                path.rsplit('/')
                    .map(canonical_provider)
                    .filter(|hint| *hint != provider && *hint != ANY)
                    .find_map(&under)
            })
            .or_else(|| under(ANY))
            .or_else(|| {
                names.iter().find_map(|n| {
                    self.ranked
                        .iter()
                        .find_map(|p| find_name(&self.providers.get(p)?.exact, n))
                })
            })
    }

    /// What `usage` of `model` cost, in USD; `None` when the model has no
    /// price or `usage` has no token count at all.
    pub fn estimate(&self, provider: &str, model: &str, usage: &Usage) -> Option<f64> {
        let counts = [
            usage.input,
            usage.output,
            usage.cache_read,
            usage.cache_write,
        ];
        if counts.iter().all(Option::is_none) {
            return None;
        }
        self.lookup(provider, model).map(|rates| rates.cost(usage))
    }

    /// A short hex digest of every entry (provider, model, rates): the same
    /// for the same prices in every run and build, different when any price
    /// changes. Stored next to an estimate, it tells which prices made it.
    pub fn fingerprint(&self) -> String {
        let mut lines: Vec<String> = Vec::with_capacity(self.len());
        for (provider, prices) in &self.providers {
            let patterns = prices
                .patterns
                .iter()
                .map(|(prefix, rates)| (format!("{prefix}*"), rates));
            let exact = prices.exact.iter().map(|(m, rates)| (m.to_string(), rates));
            for (model, rates) in exact.chain(patterns) {
                lines.push(format!("{provider}\t{model}\t{}\n", RatesText(rates)));
            }
        }
        lines.sort_unstable();
        // FNV-1a, 64 bits: deterministic, unlike std's randomly keyed hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in lines.iter().flat_map(|l| l.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}")
    }

    /// Entries (exact names and patterns).
    pub fn len(&self) -> usize {
        self.providers
            .values()
            .map(|p| p.exact.len() + p.patterns.len())
            .sum()
    }

    /// Whether the table prices nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the prices come from: the `# source:` line (the built-in one
    /// names the litellm release and the date), then the override file's.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn insert(&mut self, entry: Entry<'static>) {
        let prices = self.providers.entry(entry.provider).or_default();
        match entry.model.strip_suffix('*') {
            Some(prefix) => {
                let prefix = match &entry.model {
                    Cow::Borrowed(model) => Cow::Borrowed(&model[..prefix.len()]),
                    Cow::Owned(_) => Cow::Owned(prefix.to_owned()),
                };
                prices.insert_pattern(prefix, entry.rates);
            }
            None => prices.exact.push((entry.model, entry.rates)),
        }
    }

    /// Sorts each provider's names and ranks the providers for the "any
    /// provider" fallback, after entries change.
    fn index(&mut self) {
        for prices in self.providers.values_mut() {
            sort_names(&mut prices.exact);
        }
        let rank = |provider: &str| {
            PROVIDER_RANK
                .iter()
                .position(|p| *p == provider)
                .unwrap_or(PROVIDER_RANK.len())
        };
        let mut ranked: Vec<String> = self
            .providers
            .keys()
            .filter(|p| p.as_str() != ANY)
            .cloned()
            .collect();
        ranked.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
        self.ranked = ranked;
    }
}

/// Rates as a price file writes them.
struct RatesText<'a>(&'a Rates);

impl fmt::Display for RatesText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let optional = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        write!(
            f,
            "{}\t{}\t{}\t{}",
            self.0.input,
            self.0.output,
            optional(self.0.cache_read),
            optional(self.0.cache_write)
        )
    }
}

/// One line of a price file.
struct Entry<'t> {
    /// Canonical provider, or `*`.
    provider: String,
    /// Lower case; may end in `*`. Borrowed from the line when it was
    /// lower case already.
    model: Cow<'t, str>,
    rates: Rates,
}

const LINE_SHAPE: &str = "a line is: provider model input output [cache_read [cache_write]]";

impl<'t> Entry<'t> {
    /// The entry on a line (its comment already cut off); `None` for a
    /// blank line.
    fn parse(content: &'t str, line: usize) -> Result<Option<Entry<'t>>, PriceError> {
        let mut fields = content.split_whitespace();
        let Some(provider) = fields.next() else {
            return Ok(None);
        };
        let missing = |field| line_error(line, field, format!("missing; {LINE_SHAPE}"));
        let model = fields.next().ok_or_else(|| missing("model"))?;
        let input = fields.next().ok_or_else(|| missing("input"))?;
        let output = fields.next().ok_or_else(|| missing("output"))?;
        let cache_read = fields.next();
        let cache_write = fields.next();
        if let Some(extra) = fields.next() {
            return Err(line_error(
                line,
                "end of line",
                format!("unexpected {extra:?} after cache_write; {LINE_SHAPE}"),
            ));
        }
        let provider = provider.to_ascii_lowercase();
        if provider.contains('/') || (provider.contains('*') && provider != ANY) {
            return Err(line_error(
                line,
                "provider",
                format!("{provider:?}: expected a provider name such as anthropic, or * for any"),
            ));
        }
        let model: Cow<'t, str> = if model.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(model.to_ascii_lowercase())
        } else {
            Cow::Borrowed(model)
        };
        let star = model.find('*');
        if model.contains('/') || star.is_some_and(|at| at + 1 != model.len()) {
            return Err(line_error(
                line,
                "model",
                format!(
                    "{model:?}: expected a model name without its provider path \
                     (claude-sonnet-4-5, not anthropic/claude-sonnet-4-5), \
                     with * only at the end for a prefix"
                ),
            ));
        }
        Ok(Some(Entry {
            provider: canonical_provider(&provider).to_string(),
            model,
            rates: Rates {
                input: price(line, "input", input)?,
                output: price(line, "output", output)?,
                cache_read: optional_price(line, "cache_read", cache_read)?,
                cache_write: optional_price(line, "cache_write", cache_write)?,
            },
        }))
    }
}

fn line_error(line: usize, field: &'static str, problem: String) -> PriceError {
    PriceError::Line {
        file: None,
        line,
        field,
        problem,
    }
}

fn price(line: usize, field: &'static str, text: &str) -> Result<f64, PriceError> {
    text.parse::<f64>()
        .ok()
        .filter(|p| p.is_finite() && (0.0..=MAX_PRICE).contains(p))
        .ok_or_else(|| {
            line_error(
                line,
                field,
                format!("{text:?}: expected USD per 1M tokens, a number from 0 to 1000000 like 3 or 0.075"),
            )
        })
}

fn optional_price(
    line: usize,
    field: &'static str,
    text: Option<&str>,
) -> Result<Option<f64>, PriceError> {
    match text {
        None | Some("-") => Ok(None),
        Some(text) => price(line, field, text).map(Some),
    }
}

/// The names tried for a model name (lower case, without a provider path),
/// in order. `candidates` in `scripts/update-prices.py` is the same.
fn candidates(name: &str) -> Vec<Cow<'_, str>> {
    let mut names: Vec<Cow<'_, str>> = Vec::with_capacity(12);
    let mut base = Some(name);
    let mut bases = 0;
    while let Some(b) = base {
        names.push(Cow::Borrowed(b));
        let mut current = b;
        for _ in 0..4 {
            match strip_suffix(current) {
                Some(shorter) => {
                    names.push(Cow::Borrowed(shorter));
                    current = shorter;
                }
                None => break,
            }
        }
        bases += 1;
        base = if bases < 3 {
            strip_dotted_prefix(b)
        } else {
            None
        };
    }
    for i in 0..names.len() {
        if names[i].contains('.') {
            let hyphens = names[i].replace('.', "-");
            names.push(Cow::Owned(hyphens));
        }
    }
    names
}

/// `name` without one trailing date or version, or `None`. The rules, in
/// order: `-v1:0` (Bedrock), `:tag`, `@version` (Vertex), `-20250929`,
/// `-2024-08-06`, `-09-2025`, `-001` or `-0613`.
fn strip_suffix(name: &str) -> Option<&str> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // -v1:0
    if let Some((before, after)) = name.rsplit_once(':') {
        if digits(after) {
            if let Some((stem, version)) = before.rsplit_once("-v") {
                if digits(version) {
                    if let Some(stem) = non_empty(stem) {
                        return Some(stem);
                    }
                }
            }
        }
    }
    // :tag
    if let Some((before, tag)) = name.rsplit_once(':') {
        let tag_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b);
        if !tag.is_empty() && tag.bytes().all(tag_char) {
            if let Some(before) = non_empty(before) {
                return Some(before);
            }
        }
    }
    // @version
    if let Some((before, version)) = name.rsplit_once('@') {
        let version_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !version.is_empty() && version.bytes().all(version_char) {
            if let Some(before) = non_empty(before) {
                return Some(before);
            }
        }
    }
    // Dates by shape: '-' and digits at fixed places from the end.
    let bytes = name.as_bytes();
    let shaped = |shape: &[u8]| {
        bytes.len() > shape.len()
            && bytes[bytes.len() - shape.len()..]
                .iter()
                .zip(shape)
                .all(|(b, s)| {
                    if *s == b'0' {
                        b.is_ascii_digit()
                    } else {
                        b == s
                    }
                })
    };
    for shape in [&b"-00000000"[..], &b"-0000-00-00"[..], &b"-00-0000"[..]] {
        if shaped(shape) {
            return Some(&name[..name.len() - shape.len()]);
        }
    }
    // -001, -0613
    let trailing = bytes
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if (3..=4).contains(&trailing)
        && bytes.len() > trailing + 1
        && bytes[bytes.len() - trailing - 1] == b'-'
    {
        return Some(&name[..name.len() - trailing - 1]);
    }
    None
}

fn non_empty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

/// `name` without its first dotted prefix of letters and hyphens
/// (`us.anthropic.claude-x` → `anthropic.claude-x` → `claude-x`), or `None`.
fn strip_dotted_prefix(name: &str) -> Option<&str> {
    let (head, rest) = name.split_once('.')?;
    let prefix_char = |b: u8| b.is_ascii_lowercase() || b == b'-';
    (!rest.is_empty()
        && head.bytes().all(prefix_char)
        && head.bytes().any(|b| b.is_ascii_lowercase()))
    .then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(input: f64, output: f64, cache_read: Option<f64>, cache_write: Option<f64>) -> Rates {
        Rates {
            input,
            output,
            cache_read,
            cache_write,
        }
    }

    /// The rates the built-in file's own line gives `provider model`.
    fn line_of(provider: &str, model: &str) -> Rates {
        let line = BUILTIN
            .lines()
            .find(|l| {
                let mut f = l.split_whitespace();
                f.next() == Some(provider) && f.next() == Some(model)
            })
            .unwrap_or_else(|| panic!("prices.txt has no line for {provider} {model}"));
        let entry = Entry::parse(line, 0)
            .expect("a valid line")
            .expect("not blank");
        entry.rates
    }

    fn table(text: &str) -> PriceTable {
        PriceTable::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_builtin_table_parses_and_is_substantial() {
        let builtin = PriceTable::parse(BUILTIN).expect("prices.txt parses");
        assert!(builtin.len() >= 200, "{} entries", builtin.len());
        assert_eq!(PriceTable::builtin().len(), builtin.len());
        assert!(
            builtin
                .source()
                .starts_with("LiteLLM model_prices_and_context_window.json (litellm "),
            "{}",
            builtin.source()
        );
        assert!(
            builtin.source().contains("generated 20"),
            "{}",
            builtin.source()
        );
        for provider in [
            "openai",
            "anthropic",
            "google",
            "bedrock",
            "vertex",
            "xai",
            "mistral",
        ] {
            assert!(builtin.providers.contains_key(provider), "{provider}");
        }
    }

    #[test]
    fn known_models_have_their_line_s_prices() {
        let t = PriceTable::builtin();
        let sonnet = t.lookup("anthropic", "claude-sonnet-4-5").expect("priced");
        assert_eq!(*sonnet, line_of("anthropic", "claude-sonnet-4-5"));
        assert_eq!(*sonnet, rates(3.0, 15.0, Some(0.3), Some(3.75)));
        let gpt4o = t.lookup("openai", "gpt-4o").expect("priced");
        assert_eq!(*gpt4o, line_of("openai", "gpt-4o"));
        assert_eq!(*gpt4o, rates(2.5, 10.0, Some(1.25), None));
        let gemini = t.lookup("google", "gemini-2.5-pro").expect("priced");
        assert_eq!(*gemini, line_of("google", "gemini-2.5-pro"));
        assert_eq!(*gemini, rates(1.25, 10.0, Some(0.125), None));
    }

    #[test]
    fn dates_and_versions_at_the_end_are_stripped() {
        let t = PriceTable::builtin();
        let sonnet = line_of("anthropic", "claude-sonnet-4-5");
        assert_eq!(
            t.lookup("anthropic", "claude-sonnet-4-5-20250929"),
            Some(&sonnet)
        );
        assert_eq!(
            t.lookup("openai", "gpt-4o-2024-08-06"),
            Some(&line_of("openai", "gpt-4o"))
        );
        assert_eq!(
            t.lookup("vertex", "claude-sonnet-4-6@default"),
            Some(&line_of("vertex", "claude-sonnet-4-6"))
        );
        assert_eq!(
            t.lookup(
                "amazon-bedrock",
                "anthropic.claude-sonnet-4-5-20250929-v1:0"
            ),
            Some(&line_of("bedrock", "anthropic.claude-sonnet-4-5"))
        );
        // A regional inference profile has its own (higher) price.
        assert_eq!(
            t.lookup("bedrock", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            Some(&line_of(
                "bedrock",
                "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
            ))
        );
        // An exact line wins over the stripped name.
        let exact = table("openai gpt-4o 2.5 10\nopenai gpt-4o-2024-05-13 5 15\n");
        assert_eq!(
            exact.lookup("openai", "gpt-4o-2024-05-13").map(|r| r.input),
            Some(5.0)
        );
        assert_eq!(
            exact.lookup("openai", "gpt-4o-2024-11-20").map(|r| r.input),
            Some(2.5)
        );
        assert_eq!(exact.lookup("openai", "gpt-4o-mini"), None, "not a date");
    }

    #[test]
    fn candidate_names_follow_the_documented_rules() {
        let names = |m: &str| {
            candidates(m)
                .into_iter()
                .map(Cow::into_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("gpt-4o"), ["gpt-4o"]);
        assert_eq!(names("gpt-4-0613"), ["gpt-4-0613", "gpt-4"]);
        assert_eq!(names("gpt-4o-2024-08-06"), ["gpt-4o-2024-08-06", "gpt-4o"]);
        assert_eq!(
            names("us.anthropic.claude-x-20250929-v1:0"),
            [
                "us.anthropic.claude-x-20250929-v1:0",
                "us.anthropic.claude-x-20250929",
                "us.anthropic.claude-x",
                "anthropic.claude-x-20250929-v1:0",
                "anthropic.claude-x-20250929",
                "anthropic.claude-x",
                "claude-x-20250929-v1:0",
                "claude-x-20250929",
                "claude-x",
                "us-anthropic-claude-x-20250929-v1:0",
                "us-anthropic-claude-x-20250929",
                "us-anthropic-claude-x",
                "anthropic-claude-x-20250929-v1:0",
                "anthropic-claude-x-20250929",
                "anthropic-claude-x",
            ]
        );
        assert_eq!(
            names("claude-sonnet-4.5:thinking"),
            [
                "claude-sonnet-4.5:thinking",
                "claude-sonnet-4.5",
                "claude-sonnet-4-5:thinking",
                "claude-sonnet-4-5"
            ]
        );
        assert_eq!(
            names("gemini-2.5-flash-preview-09-2025"),
            [
                "gemini-2.5-flash-preview-09-2025",
                "gemini-2.5-flash-preview",
                "gemini-2-5-flash-preview-09-2025",
                "gemini-2-5-flash-preview"
            ]
        );
        assert_eq!(names("gemini-2.0-flash-001")[1], "gemini-2.0-flash");
        assert_eq!(names("deepseek.v3.2")[1], "v3.2", "a vendor prefix goes");
        assert_eq!(names("gpt-4.1")[..1], ["gpt-4.1"], "gpt-4 is not a prefix");
        assert_eq!(names("-0613"), ["-0613"], "nothing left is no name");
        assert_eq!(names("x-12345"), ["x-12345"], "five digits are no date");
    }

    #[test]
    fn provider_paths_in_the_model_are_stripped_and_hint_the_provider() {
        let t = PriceTable::builtin();
        let sonnet = line_of("anthropic", "claude-sonnet-4-5");
        assert_eq!(
            t.lookup("anthropic", "anthropic/claude-sonnet-4-5"),
            Some(&sonnet)
        );
        assert_eq!(
            t.lookup("openrouter", "openrouter/anthropic/claude-sonnet-4.5"),
            Some(&sonnet),
            "OpenRouter's dotted version, and its path naming the maker"
        );
        assert_eq!(
            t.lookup("google", "models/gemini-2.5-pro"),
            Some(&line_of("google", "gemini-2.5-pro"))
        );
        // The path names the maker whose price applies, not another host's.
        let hinted = table("anthropic m 1 2\nperplexity m 9 9\n");
        assert_eq!(
            hinted.lookup("openrouter", "anthropic/m").map(|r| r.input),
            Some(1.0)
        );
        assert_eq!(
            hinted.lookup("openrouter", "perplexity/m").map(|r| r.input),
            Some(9.0)
        );
    }

    #[test]
    fn provider_aliases_and_case_do_not_matter() {
        let t = PriceTable::builtin();
        let gemini = line_of("google", "gemini-2.5-pro");
        for provider in [
            "google",
            "gemini",
            "Google-AI-Studio",
            "gcp.gemini",
            "google-gemini-cli",
        ] {
            assert_eq!(
                t.lookup(provider, "Gemini-2.5-Pro"),
                Some(&gemini),
                "{provider}"
            );
        }
        let bedrock = line_of("bedrock", "anthropic.claude-sonnet-4-5");
        for provider in ["bedrock", "amazon-bedrock", "aws.bedrock"] {
            assert_eq!(
                t.lookup(provider, "anthropic.claude-sonnet-4-5-20250929-v1:0"),
                Some(&bedrock),
                "{provider}"
            );
        }
        let vertex = line_of("vertex", "claude-sonnet-4-6");
        for provider in ["vertex", "vertex_ai", "google-vertex"] {
            assert_eq!(
                t.lookup(provider, "claude-sonnet-4-6"),
                Some(&vertex),
                "{provider}"
            );
        }
        let grok = line_of("xai", "grok-4.5");
        for provider in ["xai", "x-ai", "X_AI"] {
            assert_eq!(t.lookup(provider, "grok-4.5"), Some(&grok), "{provider}");
        }
        assert_eq!(
            t.lookup("openai-codex", "gpt-5"),
            Some(&line_of("openai", "gpt-5"))
        );
        // Aliases apply to the file too.
        let file = table("Gemini my-model 1 2\n");
        assert_eq!(
            file.lookup("google", "my-model").map(|r| r.output),
            Some(2.0)
        );
    }

    #[test]
    fn an_unknown_provider_finds_the_model_under_its_maker() {
        let t = PriceTable::builtin();
        let sonnet = line_of("anthropic", "claude-sonnet-4-5");
        assert_eq!(
            t.lookup("some-proxy", "claude-sonnet-4-5-20250929"),
            Some(&sonnet)
        );
        assert_eq!(
            t.lookup("unknown", "gpt-4o"),
            Some(&line_of("openai", "gpt-4o"))
        );
        assert_eq!(t.lookup("some-proxy", "no-such-model-anywhere"), None);
        assert_eq!(t.lookup("anthropic", "no-such-model-anywhere"), None);
        assert_eq!(t.lookup("anthropic", ""), None);
        assert_eq!(t.lookup("anthropic", "anthropic/"), None);

        // The best-ranked provider wins, whatever the file's order; an
        // unranked provider comes after the ranked ones.
        let t = table(
            "zz-host shared 9 9\n\
             fireworks shared 7 7\n\
             azure shared 5 5\n\
             openai shared 1 1\n\
             zz-host only-here 3 3\n",
        );
        assert_eq!(t.lookup("proxy", "shared").map(|r| r.input), Some(1.0));
        assert_eq!(t.lookup("proxy", "only-here").map(|r| r.input), Some(3.0));
    }

    #[test]
    fn prefix_patterns_match_the_longest_and_exact_names_win() {
        let t = table(
            "openai gpt-9* 1 2\n\
             openai gpt-9-mini* 0.1 0.2\n\
             openai gpt-9-mini-exact 7 7\n\
             * local-* 0 0\n\
             openai * 50 50\n",
        );
        assert_eq!(
            t.lookup("openai", "gpt-9-turbo").map(|r| r.input),
            Some(1.0)
        );
        assert_eq!(
            t.lookup("openai", "gpt-9-mini-2030").map(|r| r.input),
            Some(0.1)
        );
        assert_eq!(
            t.lookup("openai", "gpt-9-mini-exact").map(|r| r.input),
            Some(7.0)
        );
        assert_eq!(
            t.lookup("openai", "other").map(|r| r.input),
            Some(50.0),
            "* alone"
        );
        assert_eq!(
            t.lookup("ollama", "local-llama").map(|r| r.input),
            Some(0.0),
            "any provider"
        );
        assert_eq!(
            t.lookup("ollama", "gpt-9-turbo"),
            None,
            "patterns stay with their provider"
        );
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn overrides_replace_and_add() {
        let builtin = PriceTable::builtin();
        let overrides = table(
            "# source: my prices\n\
             anthropic claude-sonnet-4-5 1 2 0.1 1.5\n\
             myproxy my-model 4 8\n",
        );
        let t = builtin.clone().with_overrides(overrides);
        assert_eq!(
            t.lookup("anthropic", "claude-sonnet-4-5-20250929"),
            Some(&rates(1.0, 2.0, Some(0.1), Some(1.5)))
        );
        assert_eq!(
            t.lookup("openrouter", "anthropic/claude-sonnet-4-5")
                .map(|r| r.input),
            Some(1.0),
            "the override also wins where the maker's price is borrowed"
        );
        assert_eq!(t.lookup("myproxy", "my-model").map(|r| r.input), Some(4.0));
        assert_eq!(t.len(), builtin.len() + 1);
        assert_eq!(
            t.lookup("openai", "gpt-4o"),
            builtin.lookup("openai", "gpt-4o")
        );
        assert!(t.source().ends_with("; my prices"), "{}", t.source());
    }

    #[test]
    fn load_reads_the_override_file_and_names_it_in_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("prices.txt");
        std::fs::write(&path, "openai gpt-4o 1 2 - -\n").expect("write");
        let t = PriceTable::load(Some(&path)).expect("loads");
        assert_eq!(
            t.lookup("openai", "gpt-4o"),
            Some(&rates(1.0, 2.0, None, None))
        );
        assert!(t.source().contains("overrides from"), "{}", t.source());
        assert_eq!(
            PriceTable::load(None).expect("builtin").len(),
            PriceTable::builtin().len()
        );

        std::fs::write(&path, "# mine\n\nopenai gpt-4o 1 two\n").expect("write");
        let e = PriceTable::load(Some(&path)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("{}: line 3, field output:", path.display())),
            "{text}"
        );

        let missing = dir.path().join("absent.txt");
        let e = PriceTable::load(Some(&missing)).unwrap_err();
        assert!(
            matches!(&e, PriceError::Read { file, .. } if *file == missing),
            "{e}"
        );
        assert!(e.to_string().contains("absent.txt"), "{e}");
    }

    #[test]
    fn parse_errors_name_the_line_and_the_field() {
        let field_of = |text: &str| match PriceTable::parse(text) {
            Err(PriceError::Line { line, field, .. }) => (line, field),
            other => panic!("{text:?}: {other:?}"),
        };
        assert_eq!(field_of("\n# c\nopenai"), (3, "model"));
        assert_eq!(field_of("openai gpt"), (1, "input"));
        assert_eq!(field_of("openai gpt 1"), (1, "output"));
        assert_eq!(field_of("openai gpt x 1"), (1, "input"));
        assert_eq!(
            field_of("openai gpt 1 -"),
            (1, "output"),
            "output is required"
        );
        assert_eq!(field_of("openai gpt 1 2 -1"), (1, "cache_read"));
        assert_eq!(field_of("openai gpt 1 2 - NaN"), (1, "cache_write"));
        assert_eq!(field_of("openai gpt 1 inf"), (1, "output"));
        assert_eq!(field_of("openai gpt 1 2 3 4 5"), (1, "end of line"));
        assert_eq!(field_of("openai anthropic/claude 1 2"), (1, "model"));
        assert_eq!(field_of("openai gpt*x 1 2"), (1, "model"));
        assert_eq!(field_of("open*ai gpt 1 2"), (1, "provider"));
        assert_eq!(
            field_of("openai gpt 1 2\ngemini x 1 2\ngoogle X 1 2"),
            (3, "model")
        );
        let e = PriceTable::parse("a b 1 2\n\nA B 3 4")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "line 3, field model: a b is already priced on line 1");
        let e = PriceTable::parse("a b 1 lots").unwrap_err().to_string();
        assert!(
            e.starts_with("line 1, field output: \"lots\": expected USD per 1M tokens"),
            "{e}"
        );
        // Comments, blank lines and trailing comments are fine.
        let t = table("# c\n\n  anthropic  m  1  2  # after\n");
        assert_eq!(t.len(), 1);
        assert_eq!(t.source(), "");
    }

    #[test]
    fn the_fingerprint_is_stable_and_follows_every_price() {
        let text = "openai a 1 2 0.5 -\nanthropic b 3 15 0.3 3.75\n* c* 1 1\n";
        let t = table(text);
        assert_eq!(t.fingerprint(), table(text).fingerprint());
        assert_eq!(t.fingerprint().len(), 16);
        let reordered = table("* c* 1 1\nanthropic b 3 15 0.3 3.75\nopenai a 1 2 0.5 -\n");
        assert_eq!(
            t.fingerprint(),
            reordered.fingerprint(),
            "order does not matter"
        );
        for changed in [
            "openai a 1 2 0.5 -\nanthropic b 3 15 0.3 3.76\n* c* 1 1\n",
            "openai a 1 2 0.5 0.5\nanthropic b 3 15 0.3 3.75\n* c* 1 1\n",
            "openai a 1 2 0.5 -\nanthropic b 3 15 0.3 3.75\n* c* 1 1.5\n",
            "openai a 1 2 0.5 -\nanthropic b 3 15 0.3 3.75\n* c 1 1\n",
        ] {
            assert_ne!(t.fingerprint(), table(changed).fingerprint(), "{changed}");
        }
        // The built-in one, twice (its maps are hashed with random keys).
        assert_eq!(
            PriceTable::builtin().fingerprint(),
            PriceTable::parse(BUILTIN).expect("parses").fingerprint()
        );
    }

    #[test]
    fn estimates_price_each_kind_of_token_once() {
        let t = table("anthropic m 3 15 0.3 3.75\nopenai n 2 8\n");
        let usage = Usage {
            input: Some(1_000),
            output: Some(200),
            cache_read: Some(10_000),
            cache_write: Some(2_000),
        };
        let cost = t.estimate("anthropic", "m", &usage).expect("priced");
        let expected = (1_000.0 * 3.0 + 200.0 * 15.0 + 10_000.0 * 0.3 + 2_000.0 * 3.75) / 1e6;
        assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
        // Cache tokens without their own rate are priced as input.
        let cost = t.estimate("openai", "n", &usage).expect("priced");
        let expected = (1_000.0 * 2.0 + 200.0 * 8.0 + 12_000.0 * 2.0) / 1e6;
        assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
        // Only output known.
        let output_only = Usage {
            output: Some(1_000_000),
            ..Usage::default()
        };
        assert_eq!(t.estimate("openai", "n", &output_only), Some(8.0));
        assert_eq!(
            t.estimate(
                "openai",
                "n",
                &Usage {
                    input: Some(0),
                    ..Usage::default()
                }
            ),
            Some(0.0)
        );
        let negative = Usage {
            input: Some(-5),
            ..Usage::default()
        };
        assert_eq!(t.estimate("openai", "n", &negative), Some(0.0));
    }

    #[test]
    fn no_price_or_no_tokens_is_no_estimate() {
        let t = PriceTable::builtin();
        let usage = Usage {
            input: Some(10),
            ..Usage::default()
        };
        assert_eq!(t.estimate("nobody", "no-such-model", &usage), None);
        assert_eq!(
            t.estimate("anthropic", "claude-sonnet-4-5", &Usage::default()),
            None
        );
        assert!(t
            .estimate("anthropic", "claude-sonnet-4-5", &usage)
            .is_some());
    }

    #[test]
    fn huge_token_counts_stay_finite() {
        let t = table(&format!(
            "a m {MAX_PRICE} {MAX_PRICE} {MAX_PRICE} {MAX_PRICE}\n"
        ));
        for n in [1_000_000_000_000_i64, i64::MAX] {
            let usage = Usage {
                input: Some(n),
                output: Some(n),
                cache_read: Some(n),
                cache_write: Some(n),
            };
            let cost = t.estimate("a", "m", &usage).expect("priced");
            assert!(cost.is_finite() && cost > 0.0, "{n}: {cost}");
        }
        let builtin = PriceTable::builtin();
        let usage = Usage {
            input: Some(1_000_000_000_000),
            output: Some(1_000_000_000_000),
            ..Usage::default()
        };
        let cost = builtin
            .estimate("anthropic", "claude-sonnet-4-5", &usage)
            .expect("priced");
        assert_eq!(cost, 18_000_000.0);
    }
}
