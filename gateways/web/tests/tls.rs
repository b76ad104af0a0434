//! TLS on the web listener: a certificate and key from PEM files serve HTTPS to a
//! client that trusts them; a key that is not the certificate's is refused at start; a
//! client that connects and never says hello is dropped at the header timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use conclave_gateway_web::{TlsConfig, TlsError, Transport, TransportSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// PEM armour (RFC 7468) around `der`.
fn pem(label: &str, der: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A certificate for localhost in `dir`: (cert path, key path, its DER).
fn certificate(
    dir: &std::path::Path,
    name: &str,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    CertificateDer<'static>,
) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, pem("CERTIFICATE", made.cert.der())).unwrap();
    std::fs::write(&key, pem("PRIVATE KEY", &made.signing_key.serialize_der())).unwrap();
    (cert, key, made.cert.der().clone())
}

fn client(trusted: CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(trusted).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // A browser offers HTTP/2 first; the server speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = certificate(dir.path(), "server");
    let tls = TlsConfig::from_pem_files(&cert, &key).unwrap();
    assert_eq!(tls.fingerprint().len(), 95);
    let settings = TransportSettings {
        tls: Some(tls),
        header_read_timeout: Duration::from_millis(500),
        ..TransportSettings::default()
    };
    let router = Router::new().route("/hello", get(|| async { "hello over tls" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(
        Transport::new(settings).serve(listener, router, async move {
            let _ = rx.await;
        }),
    );

    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = client(der.clone())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    s.write_all(b"GET /hello HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("hello over tls"), "{text}");

    // A client that never says hello is dropped at the header timeout.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let t = tokio::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("dropped")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );

    // Plain HTTP on the TLS port gets no answer it could mistake for one.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut got)).await;
    assert!(!String::from_utf8_lossy(&got).contains("hello over tls"));

    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _, _) = certificate(dir.path(), "a");
    let (_, other_key, _) = certificate(dir.path(), "b");
    let e = TlsConfig::from_pem_files(&cert, &other_key).unwrap_err();
    assert!(matches!(e, TlsError::Config(_)), "{e}");
    // The key file given as the certificate.
    let e = TlsConfig::from_pem_files(&other_key, &other_key).unwrap_err();
    assert!(matches!(e, TlsError::Certificate { .. }), "{e}");
    // The certificate given as the key.
    let e = TlsConfig::from_pem_files(&cert, &cert).unwrap_err();
    assert!(matches!(e, TlsError::Key { .. }), "{e}");
}
