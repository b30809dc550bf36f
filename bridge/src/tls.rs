//! TLS for the MQTT side: builds the rustls client configuration of an `mqtts://` target from its `ca`,
//! `cert` and `cert_key` PEM text. The broker's certificate is always verified — against `ca` when given,
//! else against the system's roots — and there is deliberately no option to turn that off.

use std::sync::Arc;

use rumqttc::tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, UnixTime};
use rumqttc::tokio_rustls::rustls::{CertificateError, ClientConfig, Error as E, RootCertStore};

/// TLS settings of an `mqtts://` target (or of the `tmq+wss://` relay); PEM text, already read from `@file`
/// values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA certificates to trust instead of the system's roots.
    pub ca: Option<String>,
    /// Client certificate chain, presented when the broker asks.
    pub cert: Option<String>,
    /// The client certificate's private key.
    pub cert_key: Option<String>,
}

/// Why the TLS settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("bad PEM in `{what}`: {detail}")]
    Pem { what: &'static str, detail: String },
    #[error("no trusted CA: `ca` is not set and the system has no usable root certificates")]
    NoRoots,
}

/// The rustls configuration for `tls` (used both by rumqttc and by the MQTT 3.1 shim).
pub fn client_config(tls: &TlsOptions) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let pem = |what: &'static str| {
        move |e: &dyn std::fmt::Display| TlsConfigError::Pem {
            what,
            detail: e.to_string(),
        }
    };
    let mut roots = RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                let cert = cert.map_err(|e| pem("ca")(&e))?;
                // rustls words this as a peer-certificate error; here it is our own CA file that is bad.
                roots.add(cert).map_err(|e| TlsConfigError::Pem {
                    what: "ca",
                    detail: match e {
                        E::InvalidCertificate(c) => format!(
                            "a certificate in it is not valid X.509 DER ({})",
                            describe_certificate_error(&c)
                        ),
                        other => other.to_string(),
                    },
                })?;
            }
            if roots.is_empty() {
                return Err(TlsConfigError::Pem {
                    what: "ca",
                    detail: "no certificate in it".into(),
                });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert); // the system store may hold certificates rustls rejects
            }
            if roots.is_empty() {
                return Err(TlsConfigError::NoRoots);
            }
        }
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let config = match (&tls.cert, &tls.cert_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem("cert")(&e))?;
            if chain.is_empty() {
                return Err(TlsConfigError::Pem {
                    what: "cert",
                    detail: "no certificate in it".into(),
                });
            }
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| pem("cert_key")(&e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| pem("cert_key")(&e))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// What this client found wrong with the peer's certificate, when a failed TLS handshake is that (unknown
/// issuer, expired, wrong host name, …) rather than a closed socket or the peer's alert.
pub fn certificate_error(error: &std::io::Error) -> Option<&CertificateError> {
    match error.get_ref()?.downcast_ref::<E>()? {
        E::InvalidCertificate(cert) => Some(cert),
        _ => None,
    }
}

/// Whether a failed TLS handshake is this client refusing the broker's certificate: no retry can fix that.
pub fn is_certificate_rejection(error: &std::io::Error) -> bool {
    certificate_error(error).is_some()
}

/// A certificate problem by name, with what to do where the name alone does not say it.
pub fn describe_certificate_error(cert: &CertificateError) -> String {
    use CertificateError as C;
    let at = |t: &UnixTime| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.as_secs()))
    };
    match cert {
        C::UnknownIssuer => "UnknownIssuer: not signed by a trusted CA".into(),
        C::ExpiredContext { time, not_after } => {
            format!("Expired: valid until {}, now {}", at(not_after), at(time))
        }
        C::NotValidYetContext { time, not_before } => {
            format!("NotValidYet: valid from {}, now {}", at(not_before), at(time))
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            format!("NotValidForName: the certificate does not name this host ({cert:?})")
        }
        // webpki's error inside `Other`: a CA certificate presented as the server's own, typically a
        // self-signed one from plain `openssl req -x509` (CA:TRUE by default).
        C::Other(e) if format!("{e:?}").contains("CaUsedAsEndEntity") => {
            "CaUsedAsEndEntity: the server presents a CA certificate (CA:TRUE) as its own; issue it a \
             server certificate from that CA, or make the self-signed one with \
             `-addext basicConstraints=critical,CA:FALSE`"
                .into()
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_verdict_on_the_certificate_is_a_rejection() {
        let io = |e: E| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert!(is_certificate_rejection(&io(E::InvalidCertificate(
            CertificateError::UnknownIssuer
        ))));
        assert!(is_certificate_rejection(&io(E::InvalidCertificate(
            CertificateError::Expired
        ))));
        assert!(!is_certificate_rejection(&io(E::AlertReceived(
            rumqttc::tokio_rustls::rustls::AlertDescription::CertificateRequired
        ))));
        assert!(!is_certificate_rejection(&std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        )));
    }
}
