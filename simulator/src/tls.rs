//! Test certificates generated in-process: a private CA, server certificates for `127.0.0.1`/`localhost`
//! (valid or already expired) and client certificates, all as PEM.
//!
//! [`client_config`] turns the PEM into a rustls client configuration.
//!
//! Tests build a fresh [`TestPki`] per broker, so nothing is read from or trusted on the machine, and
//! a "wrong CA" is simply a second `TestPki`.

use std::sync::Arc;

use chrono::Datelike;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rumqttc::tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use rumqttc::tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Certificate generation or client configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen failed, with what was being generated.
    #[error("cannot generate the test {what} certificate: {source}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    /// A PEM input is not a usable certificate or key.
    #[error("cannot use the {what} PEM: {detail}")]
    Pem { what: &'static str, detail: String },
}

/// A certificate and its private key, PEM encoded.
#[derive(Clone)]
pub struct CertAndKey {
    /// The certificate (`-----BEGIN CERTIFICATE-----`).
    pub cert_pem: String,
    /// The PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`).
    pub key_pem: String,
}

impl std::fmt::Debug for CertAndKey {
    // The key stays out of logs and assertion messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAndKey")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A private certificate authority that issues test certificates.
pub struct TestPki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

/// The host names every server certificate is valid for.
pub const SERVER_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

impl TestPki {
    /// A new CA whose common name is `name` (shows in TLS error messages, so tests can tell CAs apart).
    pub fn new(name: &str) -> Result<Self, TlsError> {
        let err = |source| TlsError::Generate { what: "CA", source };
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name = distinguished_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, Validity::Current);
        let key = KeyPair::generate().map_err(err)?;
        let ca = CertifiedIssuer::self_signed(params, key).map_err(err)?;
        Ok(Self { ca })
    }

    /// The CA certificate clients must trust.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A server certificate for [`SERVER_NAMES`], valid from last year until the year after next.
    pub fn server_cert(&self) -> Result<CertAndKey, TlsError> {
        self.issue(
            "server",
            &SERVER_NAMES,
            ExtendedKeyUsagePurpose::ServerAuth,
            Validity::Current,
        )
    }

    /// A server certificate for [`SERVER_NAMES`] that expired on 1 January of last year.
    pub fn expired_server_cert(&self) -> Result<CertAndKey, TlsError> {
        self.issue(
            "expired server",
            &SERVER_NAMES,
            ExtendedKeyUsagePurpose::ServerAuth,
            Validity::Expired,
        )
    }

    /// A server certificate for `names` only (a client connecting by another name must reject it).
    pub fn server_cert_for(&self, names: &[&str]) -> Result<CertAndKey, TlsError> {
        self.issue(
            "server",
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
            Validity::Current,
        )
    }

    /// A self-signed certificate for [`SERVER_NAMES`] that is also a CA (basic constraints CA:TRUE), as
    /// a plain `openssl req -x509` makes it: rustls/webpki refuse it as a server's own certificate even
    /// when it is the trusted CA (`CaUsedAsEndEntity`). Independent of any `TestPki`.
    pub fn self_signed_ca_as_server() -> Result<CertAndKey, TlsError> {
        let err = |source| TlsError::Generate {
            what: "self-signed CA server",
            source,
        };
        let names: Vec<String> = SERVER_NAMES.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).map_err(err)?;
        params.distinguished_name = distinguished_name(SERVER_NAMES[1]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        set_validity(&mut params, Validity::Current);
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A client certificate whose common name is `name`.
    pub fn client_cert(&self, name: &str) -> Result<CertAndKey, TlsError> {
        self.issue(
            "client",
            &[name],
            ExtendedKeyUsagePurpose::ClientAuth,
            Validity::Current,
        )
    }

    fn issue(
        &self,
        what: &'static str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        when: Validity,
    ) -> Result<CertAndKey, TlsError> {
        let err = |source| TlsError::Generate { what, source };
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).map_err(err)?;
        params.distinguished_name = distinguished_name(&names[0]);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        set_validity(&mut params, when);
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &self.ca).map_err(err)?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A rustls client configuration trusting only `ca_pem`, optionally presenting a client certificate:
/// what a bridge or test client needs to talk to a [`TestPki`]-certified broker.
pub fn client_config(ca_pem: &str, client: Option<&CertAndKey>) -> Result<Arc<ClientConfig>, TlsError> {
    let pem_err = |what| {
        move |e: &dyn std::fmt::Display| TlsError::Pem {
            what,
            detail: e.to_string(),
        }
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| pem_err("CA")(&e))?;
        roots.add(cert).map_err(|e| pem_err("CA")(&e))?;
    }
    if roots.is_empty() {
        return Err(TlsError::Pem {
            what: "CA",
            detail: "no certificate in it".into(),
        });
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let chain = CertificateDer::pem_slice_iter(client.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_err("client certificate")(&e))?;
            let key = PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes())
                .map_err(|e| pem_err("client key")(&e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| pem_err("client certificate")(&e))?
        }
    };
    Ok(Arc::new(config))
}

enum Validity {
    Current,
    Expired,
}

fn set_validity(params: &mut CertificateParams, when: Validity) {
    let year = chrono::Utc::now().year();
    let (from, until) = match when {
        Validity::Current => (year - 1, year + 2),
        Validity::Expired => (year - 3, year - 1),
    };
    params.not_before = date_time_ymd(from, 1, 1);
    params.not_after = date_time_ymd(until, 1, 1);
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "tmq2mqtt test bench");
    dn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_pem_certificates_and_keys() {
        let pki = TestPki::new("test CA").unwrap();
        assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        for cert in [
            pki.server_cert().unwrap(),
            pki.expired_server_cert().unwrap(),
            pki.client_cert("bridge").unwrap(),
        ] {
            assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
            assert!(cert.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            assert!(
                !format!("{cert:?}").contains("PRIVATE KEY"),
                "Debug must not print the key"
            );
        }
    }

    #[test]
    fn client_configs_accept_our_pem_and_refuse_garbage() {
        let pki = TestPki::new("test CA").unwrap();
        client_config(&pki.ca_pem(), None).unwrap();
        client_config(&pki.ca_pem(), Some(&pki.client_cert("bridge").unwrap())).unwrap();
        let err = client_config("not a certificate", None).unwrap_err().to_string();
        assert_eq!(err, "cannot use the CA PEM: no certificate in it");
    }
}
