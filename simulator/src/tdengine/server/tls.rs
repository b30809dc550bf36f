//! The stand-in's optional TLS listener (`wss://`, as taosAdapter with `ssl.enable`): the server
//! certificate and key as PEM ([`TdTls`]), the rustls acceptor built from them, and [`ServerStream`],
//! the plain-or-TLS socket the WebSocket layer runs on. TLS sits on top of [`AckStream`], so every read
//! of encrypted bytes is still acknowledged at once.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rumqttc::tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use rumqttc::tokio_rustls::rustls::ServerConfig;
use rumqttc::tokio_rustls::{server::TlsStream, TlsAcceptor};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::AckStream;

/// The certificate a TLS stand-in presents, PEM encoded.
#[derive(Clone)]
pub struct TdTls {
    /// The server certificate chain (`-----BEGIN CERTIFICATE-----`, leaf first).
    pub cert_pem: String,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
}

impl std::fmt::Debug for TdTls {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TdTls").finish_non_exhaustive()
    }
}

impl TdTls {
    /// Reads the certificate chain and key from PEM files (the CLI's `--tls-cert`/`--tls-key`).
    pub fn from_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, TlsSetupError> {
        let read = |what: &'static str, path: &std::path::Path| {
            std::fs::read_to_string(path).map_err(|e| TlsSetupError {
                what,
                detail: format!("cannot read {}: {e}", path.display()),
            })
        };
        Ok(Self {
            cert_pem: read("certificate", cert)?,
            key_pem: read("key", key)?,
        })
    }
}

/// The certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS {what}: {detail}")]
pub struct TlsSetupError {
    what: &'static str,
    detail: String,
}

/// Accepts TLS on top of [`AckStream`]s.
#[derive(Clone)]
pub struct Acceptor(TlsAcceptor);

impl Acceptor {
    /// Validates the PEM and builds the rustls server configuration (TLS 1.2 and 1.3, no client
    /// certificates).
    pub fn new(tls: &TdTls) -> Result<Self, TlsSetupError> {
        let err = |what| {
            move |e: &dyn std::fmt::Display| TlsSetupError {
                what,
                detail: e.to_string(),
            }
        };
        let chain = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err("certificate")(&e))?;
        if chain.is_empty() {
            return Err(TlsSetupError {
                what: "certificate",
                detail: "no certificate in the PEM".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).map_err(|e| err("key")(&e))?;
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| err("certificate and key")(&e))?;
        Ok(Self(TlsAcceptor::from(Arc::new(config))))
    }

    /// Runs the server side of the TLS handshake.
    pub async fn accept(&self, stream: AckStream) -> std::io::Result<ServerStream> {
        let tls = self.0.accept(stream).await?;
        Ok(ServerStream::Tls(Box::new(tls)))
    }
}

/// A client connection as the WebSocket layer sees it: plain TCP or TLS, both over [`AckStream`].
pub enum ServerStream {
    Plain(AckStream),
    Tls(Box<TlsStream<AckStream>>),
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerStream::Plain(s) => s.is_write_vectored(),
            ServerStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TestPki;

    #[test]
    fn accepts_test_pki_certificates_and_names_bad_pem() {
        let pki = TestPki::new("stand-in CA").unwrap();
        let cert = pki.server_cert().unwrap();
        let tls = TdTls {
            cert_pem: cert.cert_pem.clone(),
            key_pem: cert.key_pem.clone(),
        };
        assert!(Acceptor::new(&tls).is_ok());
        assert!(!format!("{tls:?}").contains("PRIVATE KEY"));
        let no_cert = TdTls {
            cert_pem: "nothing".into(),
            key_pem: cert.key_pem.clone(),
        };
        assert_eq!(
            Acceptor::new(&no_cert).err().unwrap().to_string(),
            "TLS certificate: no certificate in the PEM"
        );
        let no_key = TdTls {
            cert_pem: cert.cert_pem,
            key_pem: "nothing".into(),
        };
        assert!(Acceptor::new(&no_key)
            .err()
            .unwrap()
            .to_string()
            .starts_with("TLS key: "));
    }
}
