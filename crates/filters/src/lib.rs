//! The built-in filters every route can use: [`Limits`] (request size),
//! [`Cors`] (cross-origin allow-list), [`SecurityHeaders`] (response
//! hardening) and [`Waf`] (the Core Rule Set). Each implements
//! [`portcullis_core::Filter`].

mod cors;
mod limits;
mod security_headers;
mod waf;

pub use cors::Cors;
pub use limits::Limits;
pub use security_headers::SecurityHeaders;
pub use waf::Waf;

#[cfg(test)]
pub(crate) mod test_support {
    use portcullis_core::{Context, RequestId, Scheme};
    use portcullis_telemetry::events::EventLog;
    use portcullis_telemetry::metrics::{Counter, Registry};
    use portcullis_telemetry::{LogSink, SinkTarget};

    pub fn ctx() -> Context {
        Context::new(
            RequestId::generate(),
            "main".into(),
            "127.0.0.1:4000".parse().unwrap(),
            Scheme::Http,
        )
    }

    pub fn events() -> (EventLog, Registry) {
        let registry = Registry::new();
        let sink = LogSink::start(&SinkTarget::Off, Counter::default()).unwrap();
        (EventLog::new(sink, &registry), registry)
    }

    pub fn request(method: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder()
            .method(method)
            .uri("http://api.example.com/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }
}
