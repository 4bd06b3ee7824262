//! Agent tokens: issued once per department of a mission, stored only as a hash, and trusted
//! from memory for a moment while their mission runs.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::dispatch::{Actor, CallerError, Done, Request};
use super::store::{NewToken, NewTokenCode, TokenRow};
use super::{timestamp, Gateway, GatewayError, Mission};
use crate::audit::Operation;
use crate::perimeter::MissionStatus;

/// SHA-256 (hex) of a token: the only form in which tokens are stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// An external agent's one-time code for its token, as its context carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenCode {
    /// The code; shown once, stored only as a hash.
    pub code: String,
    /// When it stops working.
    pub expires_at: String,
}

/// A token handed out for an exchange code.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExchangedToken {
    /// The bearer token.
    pub token: String,
    /// The mission it is bound to.
    pub mission_id: String,
    /// The department it is bound to.
    pub dept: i64,
}

/// Neither secret is ever printed by `Debug`.
impl std::fmt::Debug for TokenCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCode")
            .field("code", &"(withheld)")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl std::fmt::Debug for ExchangedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangedToken")
            .field("token", &"(withheld)")
            .field("mission_id", &self.mission_id)
            .field("dept", &self.dept)
            .finish()
    }
}

/// 32 random bytes from the OS, hex, after a prefix that says what the secret is.
fn secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// How long a token of a Running mission is trusted without reading it again. A mission this
/// process pauses or stops drops its tokens at once; one stopped by another process on the
/// same database is still refused by the budget reservation, which checks Running atomically.
const TOKEN_FRESHNESS: Duration = Duration::from_secs(1);

impl Gateway {
    /// The token's mission and department, from memory while fresh.
    pub(super) async fn token(&self, token_hash: &str) -> Result<Option<TokenRow>, GatewayError> {
        if let Some(row) = self.inner.tokens.lock().ok().and_then(|cache| {
            cache
                .get(token_hash)
                .filter(|(_, read)| read.elapsed() < TOKEN_FRESHNESS)
                .map(|(row, _)| row.clone())
        }) {
            return Ok(Some(row));
        }
        let row = self.inner.repo.token(token_hash).await?;
        if let Some(row) = row.as_ref().filter(|r| r.status == MissionStatus::Running) {
            if let Ok(mut cache) = self.inner.tokens.lock() {
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(
                    token_hash.to_owned(),
                    (row.clone(), std::time::Instant::now()),
                );
            }
        }
        Ok(row)
    }

    /// Forgets the tokens trusted from memory, after a mission's status or its tokens changed
    /// (the squad engine revoked them): the next call reads them again.
    pub fn forget_tokens(&self) {
        if let Ok(mut cache) = self.inner.tokens.lock() {
            cache.clear();
        }
    }

    /// Issues a token for one department of one mission. The token is returned once; only its
    /// hash is stored. Audited (without the token); it fails with the caller's error type so the
    /// audit record of a failure travels with it.
    pub async fn issue_token<E>(
        &self,
        actor: &Actor,
        mission_id: &str,
        dept: i64,
    ) -> Result<String, E>
    where
        E: CallerError,
    {
        let request = Request::new(actor, Operation::TokenIssue)
            .on(Some(mission_id))
            .by_dept(dept);
        let issue = async {
            self.new_token(mission_id, dept, actor.name())
                .await
                .map_err(E::from)
        };
        self.audited(request, issue, |token: &String| {
            Done::said(format!(
                "issued a token for dept {dept} (hash {})",
                &hash_token(token)[..12]
            ))
        })
        .await
    }

    /// Issues a one-time code an external agent exchanges for its department's token at
    /// `POST /v1/tokens/exchange`: what its context carries instead of the token. Only the
    /// code's hash is stored. Audited (without the code).
    pub async fn issue_token_code<E>(
        &self,
        actor: &Actor,
        mission_id: &str,
        dept: i64,
    ) -> Result<TokenCode, E>
    where
        E: CallerError,
    {
        let request = Request::new(actor, Operation::TokenIssue)
            .on(Some(mission_id))
            .by_dept(dept);
        let issue = async {
            let row = self.token_holder(mission_id, dept).await?;
            let now = self.inner.clock.now();
            let code = TokenCode {
                code: secret("mcx_"),
                expires_at: timestamp(now + self.inner.config.token_code_ttl_seconds.to_chrono()),
            };
            self.inner
                .repo
                .insert_token_code(&NewTokenCode {
                    hash: &hash_token(&code.code),
                    mission_id: &row.id,
                    dept,
                    issued_at: &timestamp(now),
                    expires_at: &code.expires_at,
                })
                .await?;
            Ok(code)
        };
        self.audited(
            request,
            async { issue.await.map_err(E::from) },
            |code: &TokenCode| {
                Done::said(format!(
                "issued a one-time token exchange code for dept {dept} (hash {}), usable until {}",
                &hash_token(&code.code)[..12],
                code.expires_at
            ))
            },
        )
        .await
    }

    /// Exchanges a one-time code for its department's token: once, before it expires. The
    /// code's mission must still be able to get tokens. Audited, refusals included.
    pub async fn exchange_token_code<E>(&self, code: &str) -> Result<ExchangedToken, E>
    where
        E: CallerError,
    {
        let code_hash = hash_token(code);
        let actor = Actor::CodeHolder(code_hash[..12].to_owned());
        let request = Request::new(&actor, Operation::TokenIssue);
        let exchange = async {
            let now = timestamp(self.inner.clock.now());
            let Some((mission_id, dept)) = self.inner.repo.use_token_code(&code_hash, &now).await?
            else {
                return Err(GatewayError::CodeRefused(
                    "the exchange code is not one the gateway issued, was used already, or \
                     expired; a department's code works once, for a few minutes after its \
                     context was sent"
                        .to_owned(),
                ));
            };
            let token = self.new_token(&mission_id, dept, actor.name()).await?;
            Ok(ExchangedToken {
                token,
                mission_id,
                dept,
            })
        };
        self.audited(
            request,
            async { exchange.await.map_err(E::from) },
            |t: &ExchangedToken| {
                Done::said(format!(
                    "exchanged a one-time code for a token of mission {} dept {} (hash {})",
                    t.mission_id,
                    t.dept,
                    &hash_token(&t.token)[..12]
                ))
            },
        )
        .await
    }

    /// The mission, if it can still hand a token to this department.
    async fn token_holder(
        &self,
        mission_id: &str,
        dept: i64,
    ) -> Result<Arc<Mission>, GatewayError> {
        let row = self.mission(mission_id).await?;
        if row.status.is_over() {
            return Err(GatewayError::MissionState {
                id: mission_id.to_owned(),
                status: row.status,
                what: "a finished mission gets no new tokens".to_owned(),
            });
        }
        if !row.required_depts.contains(&dept) {
            return Err(GatewayError::UnknownDepartment {
                dept,
                mission: mission_id.to_owned(),
                required: row
                    .required_depts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(row)
    }

    pub(super) async fn new_token(
        &self,
        mission_id: &str,
        dept: i64,
        issued_by: String,
    ) -> Result<String, GatewayError> {
        let row = self.token_holder(mission_id, dept).await?;
        let token = secret("mct_");
        self.inner
            .repo
            .insert_token(&NewToken {
                hash: &hash_token(&token),
                mission_id: &row.id,
                dept,
                issued_by: &issued_by,
                issued_at: &timestamp(self.inner.clock.now()),
            })
            .await?;
        Ok(token)
    }
}
