//! The static source: orchestrators written down by the user, like go-livepeer's `-orchAddr`.

use std::future::Future;

use super::{Candidate, DiscoverySource, SourceError, StaticEntry, parse_address};

/// How errors name a static list.
pub(super) const ORIGIN: &str = "static list";

/// A fixed list of orchestrators.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StaticSource {
    pub orchestrators: Vec<StaticEntry>,
}

impl StaticSource {
    /// A list of addresses without scores.
    pub fn from_addresses<S: Into<String>>(addresses: impl IntoIterator<Item = S>) -> Self {
        StaticSource {
            orchestrators: addresses
                .into_iter()
                .map(|a| StaticEntry {
                    address: a.into(),
                    score: None,
                })
                .collect(),
        }
    }

    /// The candidates, without any IO: a static list needs none.
    pub fn resolve(&self) -> Result<Vec<Candidate>, SourceError> {
        let candidates = self
            .orchestrators
            .iter()
            .map(|entry| {
                Ok(Candidate {
                    uri: parse_address(ORIGIN, &entry.address)?,
                    score: entry.score,
                    source: "static",
                })
            })
            .collect::<Result<Vec<_>, SourceError>>()?;
        Ok(super::dedup_best(candidates))
    }
}

impl DiscoverySource for StaticSource {
    fn kind(&self) -> &'static str {
        "static"
    }

    fn candidates<'a>(
        &'a self,
        _http: &'a reqwest::Client,
    ) -> impl Future<Output = Result<Vec<Candidate>, SourceError>> + Send + 'a {
        std::future::ready(self.resolve())
    }
}
