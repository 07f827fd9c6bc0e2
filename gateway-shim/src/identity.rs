//! Whose orchestrator is it: checking the Ethereum address an orchestrator claims in
//! GetOrchestrator against the on-chain ServiceRegistry.
//!
//! Any orchestrator can answer GetOrchestrator with any address, including a top-ranked
//! orchestrator's, and so inherit its SLA score and charge its own failures to it. An address
//! counts as the orchestrator's only when the ServiceRegistry maps it to the URI lvt connected
//! to, which only the address's key holder can arrange. [`AddressVerifier`] asks the chain once
//! per address and keeps the answer for its own lifetime (one run, or one agent run), so a run
//! of many sessions against few orchestrators costs a few `eth_call`s. A chain that cannot be
//! read leaves the address unverified (and is asked again next time), never verified.

use std::collections::HashMap;
use std::str::FromStr;

use lvt_schema::{AddressCheck, OrchestratorRef, SessionReport};
use lvt_wire::live::OrchestratorUri;
use tokio::sync::Mutex;

use crate::discovery::config::parse_eth_address;
use crate::discovery::{ChainSource, Source};

/// The reason recorded when nothing checks addresses.
pub const NO_CHAIN: &str =
    "no chain to check against (offchain, or no address verification configured)";

/// Checks claimed addresses against the ServiceRegistry of one chain source, caching each
/// address's registered URI.
#[derive(Debug)]
pub struct AddressVerifier {
    source: ChainSource,
    http: reqwest::Client,
    /// Registered URI per address (lowercase hex), `None` for an address that registered none.
    registered: Mutex<HashMap<String, Option<String>>>,
}

impl AddressVerifier {
    /// A verifier reading `source`'s ServiceRegistry through `http`.
    pub fn new(source: ChainSource, http: reqwest::Client) -> AddressVerifier {
        AddressVerifier {
            source,
            http,
            registered: Mutex::new(HashMap::new()),
        }
    }

    /// A verifier reading the ServiceRegistry of the first on-chain source among `sources`
    /// (network selection checks claims through the chain it discovers from); `None` without
    /// one.
    pub fn of_sources(sources: &[Source], http: &reqwest::Client) -> Option<AddressVerifier> {
        sources.iter().find_map(|source| match source {
            Source::Chain(chain) => Some(AddressVerifier::new(chain.clone(), http.clone())),
            _ => None,
        })
    }

    /// How `claimed` (an address from GetOrchestrator) compares with what the ServiceRegistry
    /// registered for it, given that the tester connected to `uri`.
    pub async fn check(&self, claimed: &str, uri: &str) -> AddressCheck {
        let Ok(address) = parse_eth_address("address", claimed) else {
            // Not an address at all: nothing can be registered under it.
            return AddressCheck::Mismatch {
                registered_uri: None,
            };
        };
        let key = claimed.trim().to_ascii_lowercase();
        let cached = self.registered.lock().await.get(&key).cloned();
        let registered = match cached {
            Some(registered) => registered,
            None => match self.source.registered_uri(&self.http, address).await {
                Ok(registered) => {
                    self.registered.lock().await.insert(key, registered.clone());
                    registered
                }
                Err(error) => {
                    return AddressCheck::Unverified {
                        reason: format!("the ServiceRegistry could not be read: {error}"),
                    };
                }
            },
        };
        judge(registered, uri)
    }

    /// Checks the address of `orchestrator`, if it claims one.
    pub async fn check_ref(&self, orchestrator: &mut OrchestratorRef) {
        if let Some(claimed) = orchestrator.address.clone() {
            orchestrator.address_check = Some(self.check(&claimed, &orchestrator.uri).await);
        }
    }
}

/// Whether the URI registered for an address is the one connected to: equal as orchestrator
/// URIs (scheme, host in any case, and port; `host:port` registrations mean https, as
/// go-livepeer reads them).
pub fn judge(registered: Option<String>, uri: &str) -> AddressCheck {
    let parts = |text: &str| {
        OrchestratorUri::from_str(text)
            .ok()
            .map(|u| (u.scheme, u.host.to_ascii_lowercase(), u.port))
    };
    let same = registered
        .as_deref()
        .and_then(parts)
        .is_some_and(|registered| parts(uri) == Some(registered));
    if same {
        AddressCheck::Verified
    } else {
        AddressCheck::Mismatch {
            registered_uri: registered,
        }
    }
}

/// Sets the address check of every orchestrator `report` names (the session's and each
/// network share's): through `verifier`, or unverified without one.
pub async fn check_report(report: &mut SessionReport, verifier: Option<&AddressVerifier>) {
    let shares = report
        .served_by
        .iter_mut()
        .map(|share| &mut share.orchestrator);
    for orchestrator in report.orchestrator.iter_mut().chain(shares) {
        match verifier {
            Some(verifier) => verifier.check_ref(orchestrator).await,
            None => {
                if orchestrator.address.is_some() {
                    orchestrator.address_check = Some(AddressCheck::Unverified {
                        reason: NO_CHAIN.to_owned(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_verified_only_for_the_uri_it_registered() {
        let registered = Some("https://o.example:8935".to_owned());
        assert_eq!(
            judge(registered.clone(), "https://o.example:8935"),
            AddressCheck::Verified
        );
        // A registration without a scheme is https, as go-livepeer reads it; hosts are names
        // in any case.
        assert_eq!(
            judge(Some("O.Example:8935".into()), "https://o.example:8935"),
            AddressCheck::Verified
        );
        assert!(matches!(
            judge(
                Some("http://o.example:8935".into()),
                "https://o.example:8935"
            ),
            AddressCheck::Mismatch { .. }
        ));
        assert_eq!(
            judge(registered.clone(), "https://impostor.example:8935"),
            AddressCheck::Mismatch {
                registered_uri: registered
            }
        );
        assert_eq!(
            judge(None, "https://o.example:8935"),
            AddressCheck::Mismatch {
                registered_uri: None
            }
        );
        assert_eq!(
            judge(Some("not a uri".into()), "https://o.example:8935"),
            AddressCheck::Mismatch {
                registered_uri: Some("not a uri".into())
            }
        );
    }

    #[tokio::test]
    async fn without_a_verifier_every_claimed_address_is_unverified() {
        let mut report = SessionReport::new("s", "noop", 1);
        report.orchestrator = Some(OrchestratorRef {
            address: Some("0x1111111111111111111111111111111111111111".into()),
            uri: "https://o.example:8935".into(),
            cert_sha256: None,
            cert_trust: None,
            address_check: None,
        });
        check_report(&mut report, None).await;
        assert!(matches!(
            report
                .orchestrator
                .as_ref()
                .and_then(|o| o.address_check.clone()),
            Some(AddressCheck::Unverified { .. })
        ));
        // An orchestrator that claims nothing has nothing to check.
        let mut silent = SessionReport::new("s", "noop", 1);
        silent.orchestrator = Some(OrchestratorRef {
            address: None,
            uri: "https://o.example:8935".into(),
            cert_sha256: None,
            cert_trust: None,
            address_check: None,
        });
        check_report(&mut silent, None).await;
        assert_eq!(silent.orchestrator.unwrap().address_check, None);
    }
}
