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

    /// A CA and a certificate it signs for `name`: (CA PEM, certificate PEM, key PEM).
    fn signed(ca_name: &str, name: &str, server: bool) -> (String, String, String) {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let mut leaf = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        leaf.extended_key_usages = vec![if server {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        (ca_pem, cert.pem(), key.serialize_pem())
    }

    /// Runs a TLS handshake in memory between `server` and a client trusting `server_ca`
    /// that presents `identity` (certificate and key PEM), then: `Ok(n)` with the number of
    /// client certificates the server verified, or the handshake's error.
    fn handshake(
        server: Arc<ServerConfig>,
        server_ca: &str,
        identity: Option<(&str, &str)>,
    ) -> Result<usize, String> {
        use rustls::{ClientConfig, ClientConnection, ServerConnection};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(server_ca.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let client = match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(cert.as_bytes())
                        .map(Result::unwrap)
                        .collect(),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut c = ClientConnection::new(Arc::new(client), name).unwrap();
        let mut s = ServerConnection::new(server).unwrap();
        // Each round moves every pending record one way, then the other; a handshake takes
        // a few rounds, so a bound of 10 only stops a broken exchange.
        for _ in 0..10 {
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).map_err(|e| e.to_string())?;
            }
            s.read_tls(&mut wire.as_slice())
                .map_err(|e| e.to_string())?;
            s.process_new_packets().map_err(|e| e.to_string())?;
            let mut wire = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut wire).map_err(|e| e.to_string())?;
            }
            c.read_tls(&mut wire.as_slice())
                .map_err(|e| e.to_string())?;
            c.process_new_packets().map_err(|e| e.to_string())?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(s.peer_certificates().map_or(0, <[_]>::len));
            }
        }
        Err("the handshake did not finish".into())
    }

    /// With `client_ca_path`, a client certificate of that CA is verified and recorded, one
    /// of another CA fails the handshake, and a client without one is served with no
    /// verified certificate (so the webhook, which needs a certificate or a token, refuses
    /// it: see `auth::tests::decisions`).
    #[test]
    fn client_certificates_are_verified_against_the_client_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (server_ca, cert, key) = signed("server CA", "localhost", true);
        let (client_ca, good_cert, good_key) = signed("client CA", "kube-apiserver", false);
        let (_, rogue_cert, rogue_key) = signed("rogue CA", "kube-apiserver", false);
        let tls = TlsConfig {
            cert_path: write(dir.path(), "cert.pem", &cert),
            key_path: write(dir.path(), "key.pem", &key),
            client_ca_path: Some(write(dir.path(), "client-ca.pem", &client_ca)),
        };
        let server = server_config(&tls).unwrap().get_inner();
        assert_eq!(
            handshake(server.clone(), &server_ca, Some((&good_cert, &good_key))),
            Ok(1)
        );
        assert_eq!(handshake(server.clone(), &server_ca, None), Ok(0));
        let refused = handshake(server, &server_ca, Some((&rogue_cert, &rogue_key)));
        assert!(refused.is_err(), "a certificate of another CA: {refused:?}");

        // Without a client CA, no client certificate is asked for, let alone recorded.
        let plain = TlsConfig {
            client_ca_path: None,
            ..tls
        };
        let server = server_config(&plain).unwrap().get_inner();
        assert_eq!(handshake(server, &server_ca, None), Ok(0));
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
