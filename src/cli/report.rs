//! `openclaw-trace report`: LLM calls, errors, tokens and cost per group,
//! from `/v1/llm/summary` or, with `--db`, from the same query run on the
//! file, so the numbers are the API's.

use std::path::Path;

use openclaw_trace_actors::report::summary::{summary, Summary, SummaryQuery};
use openclaw_trace_actors::report::BadParameter;
use openclaw_trace_actors::time::now_ns;

use super::client::{self, Target};
use super::table::{count, money, Align, Table};
use super::{config, dbfile, listen_addr_default, output, CliError, Exit, Flags, EXIT_CODES};

/// `report --help`.
fn help() -> String {
    format!(
        "Usage: openclaw-trace report [--since 7d] [--until T] [--by model] [--source S]
                             [--limit N] [--json] [--db PATH]

LLM calls, errors, tokens (input, output, cache read, cache write) and cost in USD
(reported by the agent, estimated from the price table, total) per group, with a
totals row and the sources counted. It asks the running daemon at TRACE_LISTEN_ADDR
(default {listen}; GET /v1/llm/summary) with TRACE_INGEST_TOKEN as its token.

Options:
  --since T    start of the window: a duration back from now (90m, 24h, 7d) or
               RFC 3339 (2026-11-29T10:00:00Z); default 7d
  --until T    end of the window, the same forms; default now
  --by LIST    group by any of model, provider, day, hour, session, channel,
               comma-separated (--by model,day); default model
  --source S   only native, otlp_span or otlp_metric rows; by default every
               source, except otlp_metric when otlp_span rows repeat it
  --limit N    groups shown, 1 to 1000 (default 100); the totals cover all
  --json       print the API's JSON (/v1/llm/summary) as it is sent, for scripts
  --db PATH    read the database file instead, strictly read-only (the daemon may
               run or not), with the same query as the API
  -h, --help   this text

{EXIT_CODES}",
        listen = listen_addr_default()
    )
}

/// The query string's pairs, as `/v1/llm/summary` takes them.
fn pairs(flags: &Flags) -> Vec<(String, String)> {
    let mut pairs = vec![
        ("since".into(), flags.value("since").unwrap_or("7d").into()),
        (
            "group_by".into(),
            flags.value("by").unwrap_or("model").into(),
        ),
    ];
    for (flag, name) in [("until", "until"), ("source", "source"), ("limit", "limit")] {
        if let Some(v) = flags.value(flag) {
            pairs.push((name.into(), v.into()));
        }
    }
    pairs
}

/// A bad parameter, named as the flag that gave it.
fn bad_flag(b: &BadParameter) -> CliError {
    let flag = match b.parameter.as_str() {
        "group_by" => "by",
        other => other,
    };
    CliError::new(Exit::Usage, format!("bad --{flag}: {}", b.message))
}

/// Runs `report` with its flags.
pub fn run(args: &[String]) -> Result<Exit, CliError> {
    let flags = Flags::parse(
        args,
        "report",
        &["since", "until", "by", "source", "limit", "db"],
        &["json", "help"],
    )?;
    if flags.switch("help") {
        output(&help())?;
        return Ok(Exit::Ok);
    }
    let pairs = pairs(&flags);
    // Checked here too, so a bad value is named even when the daemon is down.
    let query = SummaryQuery::parse(&pairs, now_ns()).map_err(|b| bad_flag(&b))?;
    let json = flags.switch("json");
    let answer = match flags.value("db") {
        Some(path) => from_file(Path::new(path), &query)?,
        None => from_daemon(&Target::from_config(&config()?), &pairs)?,
    };
    if json {
        output(&format!("{}\n", answer.json))?;
    } else {
        output(&render(&answer.summary))?;
    }
    Ok(Exit::Ok)
}

/// A summary, and its JSON as the API sends it.
struct Answer {
    summary: Summary,
    json: String,
}

fn from_daemon(target: &Target, pairs: &[(String, String)]) -> Result<Answer, CliError> {
    let answers = client::get(target, &[("/v1/llm/summary", pairs)])?;
    let [reply]: [client::Answer; 1] = answers.try_into().expect("one answer per request");
    match reply.status {
        200 => {}
        401 => return Err(reply.unauthorized()),
        400 => {
            #[derive(serde::Deserialize)]
            struct Refusal {
                parameter: String,
                message: String,
            }
            if let Ok(r) = serde_json::from_slice::<Refusal>(&reply.body) {
                return Err(bad_flag(&BadParameter::new(&r.parameter, r.message)));
            }
            return Err(CliError::new(Exit::Usage, reply.message()));
        }
        code => {
            return Err(CliError::new(
                Exit::Trouble,
                format!("the daemon answered {code}: {}", reply.message()),
            ))
        }
    }
    let summary = serde_json::from_slice(&reply.body).map_err(|e| {
        CliError::new(
            Exit::Trouble,
            format!("/v1/llm/summary answered JSON this build cannot read: {e}"),
        )
    })?;
    Ok(Answer {
        summary,
        json: String::from_utf8_lossy(&reply.body).into_owned(),
    })
}

fn from_file(path: &Path, query: &SummaryQuery) -> Result<Answer, CliError> {
    let summary = dbfile::read(path, |conn| summary(conn, query).map_err(|e| e.to_string()))?;
    let json = serde_json::to_string(&summary)
        .map_err(|e| CliError::new(Exit::Trouble, format!("encoding: {e}")))?;
    Ok(Answer { summary, json })
}

/// The summary as a table, a totals row, and the sources line.
fn render(s: &Summary) -> String {
    let by = if s.group_by.is_empty() {
        "all together".to_string()
    } else {
        format!("by {}", s.group_by.join(", "))
    };
    let mut out = format!("LLM calls from {} to {}, {by}\n\n", s.since, s.until);
    let mut columns: Vec<(String, Align)> = s
        .group_by
        .iter()
        .map(|g| (g.to_uppercase(), Align::Left))
        .collect();
    if columns.is_empty() {
        columns.push((String::new(), Align::Left));
    }
    let keys = columns.len();
    for name in [
        "CALLS",
        "ERRORS",
        "INPUT",
        "OUTPUT",
        "CACHE READ",
        "CACHE WRITE",
        "REPORTED",
        "ESTIMATED",
        "TOTAL COST",
    ] {
        columns.push((name.into(), Align::Right));
    }
    let mut table = Table::new(columns);
    let figures = |f: &openclaw_trace_actors::report::summary::Figures| {
        vec![
            count(f.calls),
            count(f.errors),
            count(f.tokens.input),
            count(f.tokens.output),
            count(f.tokens.cache_read),
            count(f.tokens.cache_write),
            money(f.cost_usd.reported),
            money(f.cost_usd.estimated),
            money(f.cost_usd.total),
        ]
    };
    if !s.group_by.is_empty() {
        for group in &s.groups {
            let mut cells: Vec<String> = s
                .group_by
                .iter()
                .map(|g| {
                    group
                        .key
                        .get(g)
                        .cloned()
                        .flatten()
                        .unwrap_or_else(|| "(none)".into())
                })
                .collect();
            cells.extend(figures(&group.figures));
            table.row(cells);
        }
        table.rule();
    }
    let mut totals = vec!["TOTAL".to_string()];
    totals.resize(keys, String::new());
    totals.extend(figures(&s.totals));
    table.row(totals);
    out.push_str(&table.render());
    out.push('\n');
    if s.truncated {
        out.push_str(&format!(
            "{} of {} groups shown (--limit); the totals cover all of them\n",
            s.groups.len(),
            s.groups_total
        ));
    }
    if s.totals.cost_usd.unpriced_calls > 0 {
        out.push_str(&format!(
            "{} calls had no reported cost and no price for their model: not in the cost\n",
            count(s.totals.cost_usd.unpriced_calls)
        ));
    }
    out.push_str(&sources_line(s));
    out
}

/// Which sources were summed, and which were left out and why.
fn sources_line(s: &Summary) -> String {
    let used = if s.sources.used.is_empty() {
        "none in the window".to_string()
    } else {
        s.sources.used.join(", ")
    };
    let mut out = format!("sources used: {used}\n");
    for skip in &s.sources.skipped {
        out.push_str(&format!(
            "sources skipped: {} ({} rows): {}\n",
            skip.source,
            count(skip.rows),
            skip.reason
        ));
    }
    out
}
