//! TLS the way the Livepeer network uses it: orchestrators serve a self-signed certificate and
//! gateways skip verification. This module owns both sides of that. The server side makes a
//! self-signed certificate and a `rustls` server configuration that offers HTTP/2 and HTTP/1.1;
//! the client side is a `rustls` client configuration that accepts any certificate but records
//! the SHA-256 fingerprint of the one it saw, so callers can practise trust on first use
//! (remember the fingerprint, notice when it changes).
//!
//! Every configuration is built with the ring crypto provider passed explicitly, so nothing here
//! depends on a process-wide default provider being installed.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// ALPN protocol id of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol id of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Errors from making certificates and TLS configurations.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen could not make the certificate (for example a host name that is not a valid DNS name).
    #[error("could not generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls rejected the certificate or key.
    #[error("invalid TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A self-signed certificate and its key, as an orchestrator serves it.
#[derive(Clone, Debug)]
pub struct SelfSigned {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// Lowercase hex SHA-256 of `cert_der`: what a client records on first use.
    pub fingerprint_sha256: String,
}

/// Makes a self-signed certificate valid for `hosts` (DNS names or IP addresses).
pub fn self_signed(hosts: &[String]) -> Result<SelfSigned, TlsError> {
    let certified = rcgen::generate_simple_self_signed(hosts.to_vec())?;
    let cert_der = certified.cert.der().to_vec();
    let key_der = certified.key_pair.serialize_der();
    let fingerprint_sha256 = fingerprint_sha256(&cert_der);
    Ok(SelfSigned {
        cert_der,
        key_der,
        fingerprint_sha256,
    })
}

/// Lowercase hex SHA-256 of a DER certificate.
pub fn fingerprint_sha256(cert_der: &[u8]) -> String {
    hex::encode(Sha256::digest(cert_der))
}

fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server configuration serving `cert`, offering ALPN `h2` then `http/1.1`.
///
/// Returns an error when the key does not belong to the certificate or cannot be parsed.
pub fn try_server_config(cert: &SelfSigned) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = vec![CertificateDer::from(cert.cert_der.clone())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// Server configuration serving `cert`, offering ALPN `h2` then `http/1.1`.
///
/// # Panics
///
/// Only when `cert` was edited by hand so that its key no longer matches its certificate;
/// use [`try_server_config`] for certificates that come from outside [`self_signed`].
pub fn server_config(cert: &SelfSigned) -> Arc<rustls::ServerConfig> {
    // A SelfSigned made by `self_signed` always holds a PKCS#8 key that belongs to its
    // certificate, and the ring provider supports the default protocol versions, so this
    // cannot fail for it.
    try_server_config(cert).expect("SelfSigned from self_signed() is a valid key pair")
}

/// Remembers the SHA-256 fingerprint of the last server certificate a client configuration saw.
///
/// Clones share the same slot. When one configuration serves many connections (a pooled HTTP
/// client), the slot holds the certificate of the most recent handshake.
#[derive(Clone, Debug, Default)]
pub struct FingerprintRecorder {
    last: Arc<Mutex<Option<String>>>,
}

impl FingerprintRecorder {
    /// Lowercase hex SHA-256 of the last leaf certificate seen, if a handshake got that far.
    pub fn fingerprint(&self) -> Option<String> {
        match self.last.lock() {
            Ok(guard) => guard.clone(),
            // A poisoned lock only means another thread panicked while holding it; the stored
            // string is still whole, so keep serving it.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn record(&self, fingerprint: String) {
        let mut guard = match self.last.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Some(fingerprint);
    }
}

/// Accepts any server certificate (Livepeer orchestrators are self-signed) and records its
/// fingerprint. Handshake signatures are still checked, so the peer provably holds the key of
/// the certificate whose fingerprint we record: without that, trust on first use means nothing.
#[derive(Debug)]
struct RecordingVerifier {
    recorder: FingerprintRecorder,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.recorder
            .record(fingerprint_sha256(end_entity.as_ref()));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Client configuration that accepts any server certificate, offering the given ALPN protocols
/// (for example `&[ALPN_H2]` for gRPC), and the recorder that reports the certificate seen.
pub fn insecure_client_config(alpn: &[&[u8]]) -> (Arc<rustls::ClientConfig>, FingerprintRecorder) {
    let provider = ring_provider();
    let recorder = FingerprintRecorder::default();
    let verifier = Arc::new(RecordingVerifier {
        recorder: recorder.clone(),
        algorithms: provider.signature_verification_algorithms,
    });
    // The ring provider implements cipher suites for every default protocol version; rustls
    // only refuses versions the provider cannot serve, so this cannot fail.
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions");
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    (Arc::new(config), recorder)
}

/// A client's connection, plaintext or TLS (the gRPC client's and the trickle client's).
pub enum ClientIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientIo::Plain(s) => s.is_write_vectored(),
            ClientIo::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_fingerprint_matches_der() {
        let cert =
            self_signed(&["localhost".to_string(), "127.0.0.1".to_string()]).expect("generate");
        assert_eq!(cert.fingerprint_sha256.len(), 64);
        assert_eq!(cert.fingerprint_sha256, fingerprint_sha256(&cert.cert_der));
        assert!(try_server_config(&cert).is_ok());
    }

    #[test]
    fn mismatched_key_is_an_error_not_a_panic() {
        let a = self_signed(&["a.example".to_string()]).expect("generate");
        let b = self_signed(&["b.example".to_string()]).expect("generate");
        let mixed = SelfSigned {
            cert_der: a.cert_der,
            key_der: b.key_der,
            fingerprint_sha256: a.fingerprint_sha256,
        };
        assert!(try_server_config(&mixed).is_err());
        let garbage = SelfSigned {
            cert_der: vec![1, 2, 3],
            key_der: vec![4, 5, 6],
            fingerprint_sha256: String::new(),
        };
        assert!(try_server_config(&garbage).is_err());
    }

    #[test]
    fn invalid_host_name_is_an_error() {
        // DNS names in certificates are IA5 (ASCII) strings.
        assert!(self_signed(&["b\u{e9}b\u{e9}.example".to_string()]).is_err());
    }
}
