//! Running a tool once the gateway let the call through: the built-in executors simulate each
//! tool's outcome deterministically from a seed, so missions run with no outside systems; an
//! `http` tool posts the arguments to its configured endpoint, on an allowlisted host only.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::catalog::Tool;
use crate::units::{Cents, Seconds};

/// The gateway's own settings from `config/gateway.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address the agent API listens on; loopback unless deliberately changed.
    pub listen: String,
    /// Hosts `http` tools may reach.
    pub http_allowlist: Vec<String>,
    /// How long an `http` tool may take.
    pub http_timeout_ms: u64,
    /// How long a waiting call, and an approved one, stays usable.
    pub approval_ttl_seconds: Seconds,
    /// How long a call may stay between its reservation and its settlement before its process
    /// is taken for dead: the call is then settled as interrupted (its estimate charged, since
    /// the tool may have run) and a repeat of its idempotency key gets that outcome. Longer
    /// than the HTTP timeout, so a slow tool is never taken for a dead one.
    pub call_recovery_seconds: Seconds,
    /// How long an external agent's one-time token exchange code stays usable.
    pub token_code_ttl_seconds: Seconds,
}

const GATEWAY_JSON: &str = include_str!("../../../../config/gateway.json");

impl GatewayConfig {
    /// The settings compiled into this build.
    pub fn bundled() -> Result<Self, serde_json::Error> {
        serde_json::from_str(GATEWAY_JSON)
    }
}

/// Arguments that cannot be priced or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArgumentError(pub String);

/// The most items one call may price: keeps a cost estimate far from overflow.
const MAX_ITEMS: i64 = 1_000_000;

/// What a call will cost, from the tool's cost model and the arguments: `flat` tools cost their
/// price; `per_item` tools their price times `items` (a count, or a list whose length counts),
/// one item when `items` is absent.
pub fn estimate_cents(tool: &Tool, args: &Value) -> Result<Cents, ArgumentError> {
    match tool.cost.model.as_str() {
        "flat" => Ok(tool.cost.cents),
        "per_item" => {
            let items = match args.get("items") {
                None => 1,
                Some(Value::Number(n)) => n
                    .as_i64()
                    .filter(|n| (1..=MAX_ITEMS).contains(n))
                    .ok_or_else(|| {
                        ArgumentError(format!(
                            "items must be a whole number from 1 to {MAX_ITEMS}"
                        ))
                    })?,
                Some(Value::Array(list)) if !list.is_empty() => {
                    i64::try_from(list.len()).unwrap_or(MAX_ITEMS + 1)
                }
                Some(_) => {
                    return Err(ArgumentError(
                        "items must be a count or a non-empty list".to_owned(),
                    ))
                }
            };
            if items > MAX_ITEMS {
                return Err(ArgumentError(format!("at most {MAX_ITEMS} items per call")));
            }
            Ok(Cents(tool.cost.cents.get() * items))
        }
        other => Err(ArgumentError(format!(
            "tool {} has unknown cost model {other}",
            tool.id
        ))),
    }
}

/// What running a tool came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Execution {
    /// The tool answered.
    Done {
        /// Its result.
        output: Value,
        /// What it cost.
        cost_cents: Cents,
        /// Whether a simulated executor produced it.
        simulated: bool,
    },
    /// The tool failed; nothing is charged.
    Failed {
        /// Why.
        message: String,
    },
}

/// The simulated outcome of a built-in tool: the same seed always gives the same result.
pub fn simulate(tool: &Tool, estimate_cents: Cents, seed: &[u8]) -> Execution {
    let digest = Sha256::new()
        .chain_update(seed)
        .chain_update(tool.id.as_bytes())
        .finalize();
    let word = u64::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
    ]);
    // Value produced: up to three times what the call cost, so missions can make or lose money.
    let ceiling = u64::try_from(estimate_cents.get().max(1)).unwrap_or(1) * 3 + 1;
    let value_cents = i64::try_from(word % ceiling).unwrap_or(0);
    let outcomes = ["completed", "completed", "completed", "partial"];
    let outcome = outcomes[usize::from(digest[8]) % outcomes.len()];
    Execution::Done {
        output: json!({
            "simulated": true,
            "tool": tool.id,
            "outcome": outcome,
            "value_cents": value_cents,
            "reference": hex::encode(&digest[9..15]),
        }),
        cost_cents: estimate_cents,
        simulated: true,
    }
}

/// Whether a URL's host is on the allowlist (exact host match, case-insensitive).
pub fn host_allowed(endpoint: &str, allowlist: &[String]) -> Result<(), String> {
    let url = reqwest::Url::parse(endpoint)
        .map_err(|e| format!("endpoint {endpoint} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("endpoint {endpoint} is not http or https"));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("endpoint {endpoint} names no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    if allowlist.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        Ok(())
    } else {
        Err(format!(
            "host {host} is not on the gateway's http allowlist; an admin can add it in \
             config/gateway.json"
        ))
    }
}

/// Posts the arguments to an `http` tool's endpoint and returns its JSON answer.
pub async fn call_http(
    client: &reqwest::Client,
    endpoint: &str,
    timeout: Duration,
    mission_id: &str,
    args: &Value,
    estimate_cents: Cents,
) -> Execution {
    let response = client
        .post(endpoint)
        .timeout(timeout)
        .header("x-mission-id", mission_id)
        .json(args)
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            return Execution::Failed {
                message: format!("the tool's endpoint could not be reached: {e}"),
            }
        }
    };
    let status = response.status();
    if !status.is_success() {
        return Execution::Failed {
            message: format!("the tool's endpoint answered {status}"),
        };
    }
    match response.json::<Value>().await {
        Ok(output) => Execution::Done {
            output,
            cost_cents: estimate_cents,
            simulated: false,
        },
        Err(e) => Execution::Failed {
            message: format!("the tool's endpoint did not answer JSON: {e}"),
        },
    }
}
