//! How the bus authenticates to real brokers: security settings from `config/kafka.json` and
//! the SASL password from the OS keychain, never from a file.

use super::config::settings;

/// The keychain service under which Kafka SASL passwords are kept (one entry per user name).
pub const KEYCHAIN_SERVICE: &str = "mission-control-kafka";

/// How the bus authenticates to real brokers. The password never sits in a file: it is read
/// from the OS keychain when the bus starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSecurity {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: String,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (SASL only).
    pub sasl_mechanism: Option<String>,
    /// SASL user name; its password is in the keychain under [`KEYCHAIN_SERVICE`].
    pub sasl_username: Option<String>,
    /// CA bundle that signs the brokers' certificates (TLS), if not the system's.
    pub ssl_ca_location: Option<String>,
}

impl Default for KafkaSecurity {
    fn default() -> Self {
        Self {
            protocol: "plaintext".to_owned(),
            sasl_mechanism: None,
            sasl_username: None,
            ssl_ca_location: None,
        }
    }
}

/// Credentials for Kafka could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The settings are inconsistent.
    #[error("Kafka security settings: {0}")]
    Settings(String),
    /// The keychain has no password for the user.
    #[error(
        "the OS keychain has no Kafka password for \"{0}\"; store it with \
         `missionctl kafka set-password --user {0}`"
    )]
    NoPassword(String),
    /// The keychain could not be read.
    #[error("the OS keychain could not be read: {0}")]
    Keychain(#[from] keyring::Error),
}

impl KafkaSecurity {
    /// The configured security: `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_MECHANISM`,
    /// `KAFKA_SASL_USERNAME` and `KAFKA_SSL_CA_LOCATION` win over `config/kafka.json`.
    pub fn configured() -> Result<Self, CredentialError> {
        let file = settings().map_err(|e| CredentialError::Settings(e.to_string()))?;
        let pick = |env: &str, configured: Option<String>| {
            std::env::var(env)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .or(configured)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let security = Self {
            protocol: pick("KAFKA_SECURITY_PROTOCOL", file.security_protocol)
                .unwrap_or_else(|| "plaintext".to_owned())
                .to_ascii_lowercase(),
            sasl_mechanism: pick("KAFKA_SASL_MECHANISM", file.sasl_mechanism),
            sasl_username: pick("KAFKA_SASL_USERNAME", file.sasl_username),
            ssl_ca_location: pick("KAFKA_SSL_CA_LOCATION", file.ssl_ca_location),
        };
        security.check()?;
        Ok(security)
    }

    fn check(&self) -> Result<(), CredentialError> {
        if !matches!(
            self.protocol.as_str(),
            "plaintext" | "ssl" | "sasl_plaintext" | "sasl_ssl"
        ) {
            return Err(CredentialError::Settings(format!(
                "security_protocol \"{}\" is not one of plaintext, ssl, sasl_plaintext, sasl_ssl",
                self.protocol
            )));
        }
        if self.uses_sasl() && self.sasl_username.is_none() {
            return Err(CredentialError::Settings(format!(
                "{} needs sasl_username (its password goes in the OS keychain)",
                self.protocol
            )));
        }
        Ok(())
    }

    /// Whether the brokers want a SASL login.
    pub fn uses_sasl(&self) -> bool {
        self.protocol.starts_with("sasl_")
    }

    /// librdkafka's settings for this security, with the SASL password read from the keychain.
    pub fn client_settings(&self) -> Result<Vec<(String, String)>, CredentialError> {
        self.check()?;
        let mut out = vec![("security.protocol".to_owned(), self.protocol.clone())];
        if let Some(ca) = &self.ssl_ca_location {
            out.push(("ssl.ca.location".to_owned(), ca.clone()));
        }
        if let Some(user) = self.sasl_username.as_ref().filter(|_| self.uses_sasl()) {
            let password = match keyring::Entry::new(KEYCHAIN_SERVICE, user)?.get_password() {
                Ok(p) => p,
                Err(keyring::Error::NoEntry) => {
                    return Err(CredentialError::NoPassword(user.clone()))
                }
                Err(e) => return Err(e.into()),
            };
            out.push((
                "sasl.mechanism".to_owned(),
                self.sasl_mechanism
                    .clone()
                    .unwrap_or_else(|| "PLAIN".to_owned()),
            ));
            out.push(("sasl.username".to_owned(), user.clone()));
            out.push(("sasl.password".to_owned(), password));
        }
        Ok(out)
    }
}

/// Keeps a Kafka SASL password in the OS keychain.
pub fn store_sasl_password(username: &str, password: &str) -> Result<(), CredentialError> {
    keyring::Entry::new(KEYCHAIN_SERVICE, username)?.set_password(password)?;
    Ok(())
}
