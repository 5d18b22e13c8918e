//! HTTP clients from Prometheus's client settings (`tls_config:`).
//!
//! TLS is rustls with the ring provider. reqwest is built without a provider of its own (the
//! default one needs a C toolchain and cmake), so every client in the process needs ring
//! installed as rustls's process default first: [`client_builder`] does that once, and every
//! place that builds a reqwest client starts from it.
//!
//! `tls_config` follows Prometheus: `ca`/`ca_file` replace the system roots (otherwise the
//! platform's roots are used), `cert`+`key` (or the `_file` forms) are the client
//! certificate, `server_name` is the name the server's certificate must carry (instead of the
//! URL's host; the SNI sent is still the URL's host), `insecure_skip_verify` accepts any
//! certificate, `min_version`/`max_version` are `TLS12` or `TLS13` (TLS 1.0 and 1.1 are not
//! offered by rustls; asking for them as a maximum is an error). Relative paths resolve
//! against the config file's directory.

use std::path::Path;
use std::sync::{Arc, Once};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::schema::TlsConfig;

/// A reqwest client builder, with the process's TLS provider installed.
pub fn client_builder() -> reqwest::ClientBuilder {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Another part of the process may have installed one first; either serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// A client with reqwest's defaults (what `reqwest::Client::new()` gives, which panics in this
/// build when no TLS provider is installed).
pub fn client() -> reqwest::Client {
    // Building with defaults fails only when the platform's TLS roots cannot be loaded at
    // all, which reqwest's own `Client::new` treats as fatal too.
    client_builder().build().expect("building an HTTP client with default settings")
}

/// A builder for a client honouring `tls` (none: the platform's defaults); the error names
/// the setting and the file.
pub fn client_builder_for(tls: Option<&TlsConfig>, base_dir: &Path) -> Result<reqwest::ClientBuilder, String> {
    let builder = client_builder();
    match tls {
        None => Ok(builder),
        Some(tls) if *tls == TlsConfig::default() => Ok(builder),
        Some(tls) => Ok(builder.tls_backend_preconfigured(rustls_config(tls, base_dir)?)),
    }
}

/// The rustls client configuration `tls` asks for.
pub fn rustls_config(tls: &TlsConfig, base_dir: &Path) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = versions(tls)?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_config: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure_skip_verify {
        Arc::new(AcceptAny(provider.signature_verification_algorithms))
    } else {
        let base: Arc<dyn ServerCertVerifier> = match pem(tls.ca.as_deref(), tls.ca_file.as_deref(), "ca", base_dir)? {
            Some(bytes) => {
                let mut roots = RootCertStore::empty();
                let certs = certificates(&bytes, "ca")?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err("tls_config: ca holds no usable certificate".into());
                }
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("tls_config: ca: {e}"))?
            }
            None => Arc::new(
                rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| format!("tls_config: the system's roots: {e}"))?,
            ),
        };
        match tls.server_name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => {
                let name = ServerName::try_from(name.to_string()).map_err(|e| format!("tls_config: server_name {name:?}: {e}"))?;
                Arc::new(Named { inner: base, name })
            }
            None => base,
        }
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let cert = pem(tls.cert.as_deref(), tls.cert_file.as_deref(), "cert", base_dir)?;
    let key = pem(tls.key.as_deref(), tls.key_file.as_deref(), "key", base_dir)?;
    let mut config = match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = certificates(&cert, "cert")?;
            let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| format!("tls_config: key: no PEM private key ({e})"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls_config: cert and key: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err("tls_config: client cert configured but no client key".into()),
        (None, Some(_)) => return Err("tls_config: client key configured but no client cert".into()),
    };
    // Scrapes and remote_write use HTTP/1.1 over TLS, as Prometheus's clients do by default.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The inline value or the file's bytes; both set is an error, as in Prometheus.
fn pem(inline: Option<&str>, file: Option<&str>, what: &str, base_dir: &Path) -> Result<Option<Vec<u8>>, String> {
    match (inline.filter(|s| !s.is_empty()), file.filter(|s| !s.is_empty())) {
        (Some(_), Some(_)) => Err(format!("tls_config: at most one of {what} and {what}_file must be configured")),
        (Some(s), None) => Ok(Some(s.as_bytes().to_vec())),
        (None, Some(f)) => {
            let path = base_dir.join(f);
            std::fs::read(&path)
                .map(Some)
                .map_err(|e| format!("tls_config: reading {what}_file {}: {e}", path.display()))
        }
        (None, None) => Ok(None),
    }
}

fn certificates(bytes: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_config: {what}: bad PEM ({e})"))?;
    if certs.is_empty() {
        return Err(format!("tls_config: {what}: no PEM certificate found"));
    }
    Ok(certs)
}

fn versions(tls: &TlsConfig) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let rank = |v: Option<&str>, default: u8, what: &str| match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some("TLS10") => Ok(10),
        Some("TLS11") => Ok(11),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(other) => Err(format!(
            "tls_config: unknown TLS version {other:?} in {what}; expected TLS10, TLS11, TLS12 or TLS13"
        )),
    };
    let (min, max) = (
        rank(tls.min_version.as_deref(), 12, "min_version")?,
        rank(tls.max_version.as_deref(), 13, "max_version")?,
    );
    if min > max {
        return Err(format!("tls_config: min_version TLS{min} is above max_version TLS{max}"));
    }
    let mut out = Vec::new();
    if min <= 12 && max >= 12 {
        out.push(&rustls::version::TLS12);
    }
    if max >= 13 {
        out.push(&rustls::version::TLS13);
    }
    if out.is_empty() {
        return Err(format!(
            "tls_config: max_version TLS{max} is not supported; TLS12 is the lowest version offered"
        ));
    }
    Ok(out)
}

/// Verifies against a fixed name (`server_name`) instead of the URL's host.
#[derive(Debug)]
struct Named {
    inner: Arc<dyn ServerCertVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for Named {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: any certificate is accepted; the handshake's signatures are still
/// checked, so the peer must hold the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAny(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_errors_naming_the_setting() {
        let dir = Path::new("/nonexistent-fedwatch");
        let cases: Vec<(TlsConfig, &str)> = vec![
            (
                TlsConfig {
                    ca_file: Some("ca.pem".into()),
                    ..Default::default()
                },
                "reading ca_file /nonexistent-fedwatch/ca.pem",
            ),
            (
                TlsConfig {
                    ca: Some("x".into()),
                    ca_file: Some("y".into()),
                    ..Default::default()
                },
                "at most one of ca and ca_file",
            ),
            (
                TlsConfig {
                    ca: Some("not pem".into()),
                    ..Default::default()
                },
                "ca: no PEM certificate found",
            ),
            (
                TlsConfig {
                    cert: Some("x".into()),
                    ..Default::default()
                },
                "client cert configured but no client key",
            ),
            (
                TlsConfig {
                    key: Some("x".into()),
                    ..Default::default()
                },
                "client key configured but no client cert",
            ),
            (
                TlsConfig {
                    min_version: Some("TLS14".into()),
                    ..Default::default()
                },
                "unknown TLS version \"TLS14\" in min_version",
            ),
            (
                TlsConfig {
                    min_version: Some("TLS13".into()),
                    max_version: Some("TLS12".into()),
                    ..Default::default()
                },
                "min_version TLS13 is above max_version TLS12",
            ),
            (
                TlsConfig {
                    min_version: Some("TLS10".into()),
                    max_version: Some("TLS11".into()),
                    ..Default::default()
                },
                "max_version TLS11 is not supported",
            ),
            (
                TlsConfig {
                    max_version: Some("TLS11".into()),
                    ..Default::default()
                },
                "min_version TLS12 is above max_version TLS11",
            ),
            (
                TlsConfig {
                    server_name: Some("bad name!".into()),
                    ..Default::default()
                },
                "server_name \"bad name!\"",
            ),
        ];
        for (tls, want) in cases {
            let got = rustls_config(&tls, dir).err().unwrap_or_default();
            assert!(got.contains(want), "{tls:?}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn defaults_and_skip_verify_build() {
        let dir = Path::new(".");
        assert!(rustls_config(&TlsConfig::default(), dir).is_ok());
        let skip = TlsConfig {
            insecure_skip_verify: true,
            min_version: Some("TLS13".into()),
            ..Default::default()
        };
        assert!(rustls_config(&skip, dir).is_ok());
        assert!(
            client_builder_for(Some(&skip), dir)
                .and_then(|b| b.build().map_err(|e| e.to_string()))
                .is_ok()
        );
        assert!(client_builder().build().is_ok());
    }
}
