//! On-chain discovery in a build without the `chain` feature (no alloy): the configuration
//! still parses and is checked field by field, then refused with
//! [`ChainConfigError::NotBuilt`], which names the feature. The types keep the names of the
//! real ones and have no values, so callers need no `cfg`.

use std::fmt;

use super::config::{ChainConfig, ChainConfigError};
use super::{Candidate, DiscoverySource, SourceError};

pub use super::config::{DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_ORCHESTRATORS, DEFAULT_RPC_URL};

/// Stands for the on-chain source; it cannot be made.
#[derive(Clone, Debug, PartialEq)]
pub enum ChainSource {}

/// Stands for what the walk found; it cannot be made.
#[derive(Clone, Debug, PartialEq)]
pub enum ChainDiscovery {}

/// Stands for the on-chain errors; none can happen.
#[derive(Debug)]
pub enum ChainError {}

impl fmt::Display for ChainError {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl std::error::Error for ChainError {}

impl TryFrom<ChainConfig> for ChainSource {
    type Error = ChainConfigError;

    /// Checks the configuration as the real source does, then refuses it.
    fn try_from(config: ChainConfig) -> Result<Self, Self::Error> {
        config.check()?;
        Err(ChainConfigError::NotBuilt)
    }
}

impl ChainSource {
    /// Never called: no value of this type exists.
    pub fn origin(&self) -> String {
        match *self {}
    }

    /// Never called: no value of this type exists.
    ///
    /// # Errors
    /// Never.
    pub async fn discover(&self, _http: &reqwest::Client) -> Result<ChainDiscovery, ChainError> {
        match *self {}
    }

    /// Never called: no value of this type exists.
    ///
    /// # Errors
    /// Never.
    pub async fn registered_uri(
        &self,
        _http: &reqwest::Client,
        _address: super::config::EthAddress,
    ) -> Result<Option<String>, ChainError> {
        match *self {}
    }
}

impl ChainDiscovery {
    /// Never called: no value of this type exists.
    pub fn candidates(&self) -> Vec<Candidate> {
        match *self {}
    }

    /// Never called: no value of this type exists.
    pub fn report_lines(&self) -> Vec<String> {
        match *self {}
    }
}

impl DiscoverySource for ChainSource {
    fn kind(&self) -> &'static str {
        match *self {}
    }

    async fn candidates(&self, _http: &reqwest::Client) -> Result<Vec<Candidate>, SourceError> {
        match *self {}
    }
}
