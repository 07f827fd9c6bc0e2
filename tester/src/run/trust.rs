//! Trust on first use of orchestrator certificates. Orchestrators serve self-signed
//! certificates, so the tester remembers the first one each orchestrator URI presents and every
//! record says how its certificate compares. A run keeps the memory for its own sessions; the
//! agent shares one memory between its runs and keeps it in state.json.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The certificates trusted so far, by orchestrator URI (lowercase hex SHA-256).
pub type TrustedCertificates = Arc<Mutex<BTreeMap<String, String>>>;

/// Applies [`trust_certificate`] to a record's orchestrator, if it names one.
pub fn judge(trusted: &TrustedCertificates, report: &mut lvt_schema::SessionReport) {
    if let Some(orchestrator) = report.orchestrator.as_mut() {
        let mut known = trusted.lock().unwrap_or_else(PoisonError::into_inner);
        trust_certificate(&mut known, orchestrator);
        if let Some(lvt_schema::CertTrust::Changed { known_sha256 }) = &orchestrator.cert_trust {
            tracing::warn!(
                message = "An orchestrator presented another TLS certificate than the one trusted for its URI; the record says so.",
                uri = %orchestrator.uri,
                trusted = %known_sha256,
                seen = orchestrator.cert_sha256.as_deref().unwrap_or("")
            );
        }
    }
}

/// Trust on first use for one record's orchestrator: the first certificate seen for a URI is
/// remembered in `known` (the agent keeps it as state.json's `fingerprints`) and trusted from then on; the record says
/// whether its certificate is that first one, the trusted one, or a different one (the trusted
/// one is kept). A record without a certificate (plaintext, or no answer) is left as it is.
pub fn trust_certificate(
    known: &mut BTreeMap<String, String>,
    orchestrator: &mut lvt_schema::OrchestratorRef,
) {
    let Some(seen) = orchestrator.cert_sha256.clone() else {
        return;
    };
    orchestrator.cert_trust = Some(match known.get(&orchestrator.uri) {
        None => {
            known.insert(orchestrator.uri.clone(), seen);
            lvt_schema::CertTrust::FirstUse
        }
        Some(trusted) if *trusted == seen => lvt_schema::CertTrust::Matches,
        Some(trusted) => lvt_schema::CertTrust::Changed {
            known_sha256: trusted.clone(),
        },
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_certificate_is_told_apart_and_the_first_one_stays_trusted() {
        let mut known = BTreeMap::new();
        let mut seen = |uri: &str, cert: Option<&str>| {
            let mut orchestrator = lvt_schema::OrchestratorRef {
                address: None,
                uri: uri.to_owned(),
                cert_sha256: cert.map(str::to_owned),
                cert_trust: None,
            };
            trust_certificate(&mut known, &mut orchestrator);
            orchestrator.cert_trust
        };
        use lvt_schema::CertTrust;
        assert_eq!(
            seen("https://o1:8935", Some("aa")),
            Some(CertTrust::FirstUse)
        );
        assert_eq!(
            seen("https://o1:8935", Some("aa")),
            Some(CertTrust::Matches)
        );
        assert_eq!(
            seen("https://o1:8935", Some("bb")),
            Some(CertTrust::Changed {
                known_sha256: "aa".to_owned()
            })
        );
        assert_eq!(
            seen("https://o1:8935", Some("aa")),
            Some(CertTrust::Matches)
        );
        assert_eq!(
            seen("https://o2:8935", Some("bb")),
            Some(CertTrust::FirstUse)
        );
        assert_eq!(
            seen("http://o3:8935", None),
            None,
            "plaintext: nothing to trust"
        );
        assert_eq!(known.len(), 2);
        assert_eq!(known["https://o1:8935"], "aa");
    }
}
