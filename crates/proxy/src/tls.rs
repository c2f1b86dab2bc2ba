//! TLS termination: rustls with TLS 1.2/1.3 and AEAD suites only,
//! certificates chosen by SNI, and certificates swapped in place when their
//! files change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use portcullis_config::runtime::{Certificate, ClientAuth, Tls, TlsVersion};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedCipherSuite};
use tokio_rustls::TlsAcceptor;

use crate::files::Fingerprint;

/// The cipher suites offered: forward-secret AEAD only.
fn strong_suites() -> Vec<SupportedCipherSuite> {
    use aws_lc_rs::cipher_suite as cs;
    vec![
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
}

/// The provider used for every TLS context of the gateway.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: strong_suites(),
        ..aws_lc_rs::default_provider()
    })
}

/// Certificates by name.
#[derive(Debug)]
struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl CertStore {
    fn build(certs: &[(Vec<String>, Arc<CertifiedKey>)]) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (names, key) in certs {
            for n in names {
                match n.strip_prefix("*.") {
                    Some(suffix) => {
                        wildcard
                            .entry(suffix.to_owned())
                            .or_insert_with(|| key.clone());
                    }
                    None => {
                        exact.entry(n.clone()).or_insert_with(|| key.clone());
                    }
                }
            }
        }
        CertStore {
            exact,
            wildcard,
            default: certs.first().map(|(_, k)| k.clone()),
        }
    }

    fn find(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = name {
            let name = name.to_ascii_lowercase();
            if let Some(k) = self.exact.get(&name) {
                return Some(k.clone());
            }
            if let Some((_, parent)) = name.split_once('.')
                && let Some(k) = self.wildcard.get(parent)
            {
                return Some(k.clone());
            }
        }
        self.default.clone()
    }
}

/// Chooses a certificate by SNI; its store can be replaced at any time.
#[derive(Debug)]
pub struct SniResolver {
    store: ArcSwap<CertStore>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.store.load().find(hello.server_name())
    }
}

/// A TLS listener's acceptor and the certificates behind it.
pub struct TlsRuntime {
    pub acceptor: TlsAcceptor,
    resolver: Arc<SniResolver>,
    certs: Vec<Certificate>,
    /// The files' fingerprints when they were last read.
    read_as: Mutex<Vec<Fingerprint>>,
}

impl TlsRuntime {
    pub fn new(tls: &Tls) -> Result<Self, rustls::Error> {
        let loaded: Vec<(Vec<String>, Arc<CertifiedKey>)> = tls
            .certificates
            .iter()
            .map(|c| (c.names.clone(), c.key.clone()))
            .collect();
        let resolver = Arc::new(SniResolver {
            store: ArcSwap::from_pointee(CertStore::build(&loaded)),
        });
        let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder =
            ServerConfig::builder_with_provider(provider()).with_protocol_versions(versions)?;
        let builder = match &tls.client_auth {
            None => builder.with_no_client_auth(),
            Some(ca) => builder.with_client_cert_verifier(client_verifier(ca)?),
        };
        let mut config = builder.with_cert_resolver(resolver.clone());
        config.ignore_client_order = true;
        config.alpn_protocols = if tls.http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let rt = TlsRuntime {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
            certs: tls.certificates.clone(),
            read_as: Mutex::new(Vec::new()),
        };
        // Read the files once more, fingerprinted first: a change between
        // the config's compilation and now is then not missed.
        if let Err(e) = rt.reload() {
            tracing::warn!(error = %e, "certificates changed while loading; serving the ones compiled");
        }
        Ok(rt)
    }

    fn fingerprints(&self) -> Vec<Fingerprint> {
        self.certs
            .iter()
            .flat_map(|c| [Fingerprint::of(&c.cert_path), Fingerprint::of(&c.key_path)])
            .collect()
    }

    /// Whether a certificate or key file changed since it was last read.
    pub fn changed_on_disk(&self) -> bool {
        let now = self.fingerprints();
        *self.read_as.lock().unwrap_or_else(|e| e.into_inner()) != now
    }

    /// Reloads every certificate from its files. All load, or nothing
    /// changes and the error is returned.
    pub fn reload(&self) -> Result<(), String> {
        *self.read_as.lock().unwrap_or_else(|e| e.into_inner()) = self.fingerprints();
        let mut loaded = Vec::with_capacity(self.certs.len());
        for c in &self.certs {
            let (key, found) = portcullis_config::load_certificate(&c.cert_path, &c.key_path)?;
            // Configured names stay; a certificate that named itself may
            // now name other hosts.
            let names = if c.names_from_cert {
                found
            } else {
                c.names.clone()
            };
            loaded.push((names, key));
        }
        self.resolver
            .store
            .store(Arc::new(CertStore::build(&loaded)));
        Ok(())
    }
}

/// Verifies client certificates against the configured CAs and CRLs.
fn client_verifier(
    ca: &ClientAuth,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in &ca.ca_certs {
        roots.add(c.clone())?;
    }
    let mut b =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .with_crls(ca.crls.iter().cloned());
    if !ca.required {
        b = b.allow_unauthenticated();
    }
    b.build()
        .map_err(|e| rustls::Error::General(format!("client certificates: {e}")))
}

/// What a verified client certificate says, for authentication and logs.
pub fn client_certificate(
    der: &rustls_pki_types::CertificateDer<'_>,
) -> Option<portcullis_core::ClientCertificate> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) | GeneralName::RFC822Name(d) | GeneralName::URI(d) => {
                    names.push((*d).to_owned());
                }
                _ => {}
            }
        }
    }
    Some(portcullis_core::ClientCertificate {
        common_name,
        names,
        serial: cert.raw_serial_as_string().replace(':', ""),
    })
}

/// The negotiated protocol name for logs.
pub fn protocol_name(v: Option<rustls::ProtocolVersion>) -> &'static str {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    }
}
