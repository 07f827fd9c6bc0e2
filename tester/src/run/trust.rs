//! Trust on first use of orchestrator certificates. Orchestrators serve self-signed
//! certificates, so the tester remembers the first one each orchestrator URI presents and every
//! record says how its certificate compares. A run keeps the memory for its own sessions; the
//! agent shares one memory between its runs and keeps it in state.json.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The certificates trusted so far, by orchestrator URI (lowercase hex SHA-256).
pub type TrustedCertificates = Arc<Mutex<BTreeMap<String, String>>>;

/// Trust on first use for every orchestrator a record names: the session's (`orchestrator`)
/// and, in network mode, each share's (`served_by`). Each is judged against what was trusted
/// before this record, so the session's orchestrator and the share it is a copy of say the
/// same; the certificates first seen in the record are trusted from then on.
pub fn judge(trusted: &TrustedCertificates, report: &mut lvt_schema::SessionReport) {
    let mut known = trusted.lock().unwrap_or_else(PoisonError::into_inner);
    let before = known.clone();
    let shares = report.served_by.iter_mut().map(|s| &mut s.orchestrator);
    for orchestrator in report.orchestrator.iter_mut().chain(shares) {
        let Some(verdict) = verdict(&before, orchestrator) else {
            continue;
        };
        match &verdict {
            lvt_schema::CertTrust::FirstUse => {
                if let Some(seen) = &orchestrator.cert_sha256 {
                    known
                        .entry(orchestrator.uri.clone())
                        .or_insert_with(|| seen.clone());
                }
            }
            lvt_schema::CertTrust::Changed { known_sha256 } => tracing::warn!(
                message = "An orchestrator presented another TLS certificate than the one trusted for its URI; the record says so.",
                uri = %orchestrator.uri,
                trusted = %known_sha256,
                seen = orchestrator.cert_sha256.as_deref().unwrap_or("")
            ),
            lvt_schema::CertTrust::Matches => {}
        }
        orchestrator.cert_trust = Some(verdict);
    }
}

/// How `orchestrator`'s certificate compares with the one `known` trusts for its URI; `None`
/// without a certificate (plaintext, or no answer).
fn verdict(
    known: &BTreeMap<String, String>,
    orchestrator: &lvt_schema::OrchestratorRef,
) -> Option<lvt_schema::CertTrust> {
    let seen = orchestrator.cert_sha256.as_ref()?;
    Some(match known.get(&orchestrator.uri) {
        None => lvt_schema::CertTrust::FirstUse,
        Some(trusted) if trusted == seen => lvt_schema::CertTrust::Matches,
        Some(trusted) => lvt_schema::CertTrust::Changed {
            known_sha256: trusted.clone(),
        },
    })
}

/// Trust on first use for one record's orchestrator: the first certificate seen for a URI is
/// remembered in `known` (the agent keeps it as state.json's `fingerprints`) and trusted from
/// then on; the record says whether its certificate is that first one, the trusted one, or a
/// different one (the trusted one is kept). A record without a certificate (plaintext, or no
/// answer) is left as it is.
pub fn trust_certificate(
    known: &mut BTreeMap<String, String>,
    orchestrator: &mut lvt_schema::OrchestratorRef,
) {
    let Some(verdict) = verdict(known, orchestrator) else {
        return;
    };
    if verdict == lvt_schema::CertTrust::FirstUse
        && let Some(seen) = &orchestrator.cert_sha256
    {
        known.insert(orchestrator.uri.clone(), seen.clone());
    }
    orchestrator.cert_trust = Some(verdict);
}

/// With `refuse_changed_certificates`, whether a session may go on with the orchestrator at
/// `uri` that presented `seen`: not when another certificate is trusted for that URI. The
/// error names both fingerprints.
pub fn check_unchanged(
    trusted: &TrustedCertificates,
    uri: &str,
    seen: Option<&str>,
) -> Result<(), String> {
    let known = trusted.lock().unwrap_or_else(PoisonError::into_inner);
    match (known.get(uri), seen) {
        (Some(trusted), Some(seen)) if trusted != seen => Err(format!(
            "{uri} presented TLS certificate sha256 {seen}, not the {trusted} trusted for it; refused (refuse_changed_certificates)"
        )),
        _ => Ok(()),
    }
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
                address_check: None,
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

    fn share(uri: &str, cert: &str) -> lvt_schema::ServedBy {
        let mut report = lvt_schema::SessionReport::new("s", "noop", 0);
        report.orchestrator = Some(lvt_schema::OrchestratorRef {
            address: None,
            uri: uri.to_owned(),
            cert_sha256: Some(cert.to_owned()),
            cert_trust: None,
            address_check: None,
        });
        serde_json::from_value(serde_json::json!({
            "orchestrator": report.orchestrator,
            "from_unix_ms": 0,
            "to_unix_ms": 1,
        }))
        .expect("a share")
    }

    #[test]
    fn every_share_of_a_network_session_is_judged_like_its_session() {
        use lvt_schema::CertTrust;
        let trusted = TrustedCertificates::default();
        trusted
            .lock()
            .unwrap()
            .insert("https://o1:8935".into(), "aa".into());
        let mut report = lvt_schema::SessionReport::new("s", "noop", 0);
        report.served_by = vec![
            share("https://o1:8935", "zz"),
            share("https://o2:8935", "bb"),
        ];
        report.orchestrator = Some(report.served_by[1].orchestrator.clone());
        judge(&trusted, &mut report);
        assert_eq!(
            report.served_by[0].orchestrator.cert_trust,
            Some(CertTrust::Changed {
                known_sha256: "aa".into()
            })
        );
        assert_eq!(
            report.served_by[1].orchestrator.cert_trust,
            Some(CertTrust::FirstUse)
        );
        assert_eq!(
            report.orchestrator.as_ref().unwrap().cert_trust,
            Some(CertTrust::FirstUse),
            "the session's orchestrator says what its share says"
        );
        assert_eq!(trusted.lock().unwrap()["https://o1:8935"], "aa", "kept");
        assert_eq!(trusted.lock().unwrap()["https://o2:8935"], "bb", "learnt");
        assert_eq!(
            check_unchanged(&trusted, "https://o1:8935", Some("zz")),
            Err("https://o1:8935 presented TLS certificate sha256 zz, not the aa trusted for it; refused (refuse_changed_certificates)".into())
        );
        assert_eq!(
            check_unchanged(&trusted, "https://o1:8935", Some("aa")),
            Ok(())
        );
        assert_eq!(
            check_unchanged(&trusted, "https://o9:8935", Some("cc")),
            Ok(()),
            "unknown"
        );
        assert_eq!(
            check_unchanged(&trusted, "http://o1:8935", None),
            Ok(()),
            "plaintext"
        );
    }
}
