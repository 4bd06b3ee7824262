//! Agent tokens: issued once per department of a mission, stored only as a hash, and trusted
//! from memory for a moment while their mission runs.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::dispatch::{Actor, CallerError, Done, Request};
use super::store::{NewToken, TokenRow};
use super::{timestamp, Gateway, GatewayError};
use crate::audit::Operation;
use crate::perimeter::MissionStatus;

/// SHA-256 (hex) of a token: the only form in which tokens are stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
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

    pub(super) async fn new_token(
        &self,
        mission_id: &str,
        dept: i64,
        issued_by: String,
    ) -> Result<String, GatewayError> {
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
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        let token = format!("mct_{}", hex::encode(secret));
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
