//! HTTPS on the listener: the rustls (ring) server configuration of `[auth.tls]`, with client
//! certificates requested (never required) and verified against `client_ca_path` when set.
//!
//! A client that presents no certificate is served as usual (it authenticates with a token);
//! one that presents a certificate not chaining to the client CA fails the handshake. The
//! acceptor records the verified peer certificates in each request's extensions, where the
//! authentication middleware looks for them (see `auth.rs`).

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use axum_server::tls_rustls::RustlsConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use trawl_config::TlsConfig;

/// The rustls configuration of `tls`: certificate chain and key from their PEM files, HTTP/2
/// and HTTP/1.1 offered by ALPN. Errors name the file and what is wrong with it.
pub fn server_config(tls: &TlsConfig) -> anyhow::Result<RustlsConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&tls.cert_path, "auth.tls.cert_path")?;
    let key = PrivateKeyDer::from_pem_slice(&read(&tls.key_path, "auth.tls.key_path")?)
        .with_context(|| {
            format!(
                "auth.tls.key_path {}: no PEM private key (PKCS#8, PKCS#1 or SEC1) found",
                tls.key_path.display()
            )
        })?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("selecting TLS protocol versions")?;
    let builder = match &tls.client_ca_path {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(path, "auth.tls.client_ca_path")? {
                roots.add(cert).with_context(|| {
                    format!("auth.tls.client_ca_path {}: unusable CA", path.display())
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .with_context(|| {
                    format!(
                        "auth.tls.client_ca_path {}: building the client verifier",
                        path.display()
                    )
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "auth.tls: the key {} does not fit the certificate {}",
            tls.key_path.display(),
            tls.cert_path.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

fn read(path: &Path, key: &str) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("{key}: reading {}", path.display()))
}

/// Every certificate of a PEM file; an error when there is none.
fn read_certs(path: &Path, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, key)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{key} {}: malformed PEM", path.display()))?;
    if certs.is_empty() {
        bail!("{key} {}: no PEM certificate found", path.display());
    }
    Ok(certs)
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, then stops accepting and
/// waits for open connections to finish (as `axum::serve`'s graceful shutdown does).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    config: RustlsConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::<SocketAddr>::new();
    let on_shutdown = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        on_shutdown.graceful_shutdown(None);
    });
    let listener = listener.into_std().context("taking over the listener")?;
    axum_server::from_tcp_rustls(listener, config)
        .context("serving HTTPS")?
        .handle(handle)
        .serve(router.into_make_service())
        .await
        .context("serving HTTPS")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn loads_a_generated_certificate_with_client_ca() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
        let tls = TlsConfig {
            cert_path: write(dir.path(), "cert.pem", &cert.cert.pem()),
            key_path: write(dir.path(), "key.pem", &cert.signing_key.serialize_pem()),
            client_ca_path: Some(write(dir.path(), "ca.pem", &ca.cert.pem())),
        };
        server_config(&tls).unwrap();
    }

    #[test]
    fn errors_name_the_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let good_cert = write(dir.path(), "cert.pem", &cert.cert.pem());
        let tls = |cert_path: PathBuf, key_path: PathBuf| TlsConfig {
            cert_path,
            key_path,
            client_ca_path: None,
        };
        let missing = dir.path().join("missing.pem");
        let err = format!(
            "{:#}",
            server_config(&tls(missing.clone(), good_cert.clone())).unwrap_err()
        );
        assert!(err.starts_with("auth.tls.cert_path: reading"), "{err}");
        let empty = write(dir.path(), "empty.pem", "");
        let err = format!(
            "{:#}",
            server_config(&tls(empty, good_cert.clone())).unwrap_err()
        );
        assert!(err.contains("no PEM certificate found"), "{err}");
        let wrong_key = write(dir.path(), "wrong.pem", &other.signing_key.serialize_pem());
        let err = format!(
            "{:#}",
            server_config(&tls(good_cert, wrong_key)).unwrap_err()
        );
        assert!(err.contains("does not fit the certificate"), "{err}");
    }
}
