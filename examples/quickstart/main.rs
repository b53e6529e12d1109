//! The quickstart: an agent pipeline under policy, on embedded defaults (a key made for
//! this run, Cedar in process, an in-memory decision cache). A guarded action is refused
//! before it runs while the data is untrusted, and allowed after a sanitizer; the passport
//! is drawn, verified offline, and tampered with. The code is `kest_quickstart::quickstart`.
//!
//! ```text
//! cargo run --example quickstart
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 cargo run --example quickstart
//! ```

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Spans and metrics go over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (the
    // standard OpenTelemetry variables apply); otherwise nothing is exported.
    let _telemetry = kest_quickstart::telemetry(|name| std::env::var(name).ok())?;
    let mut out = std::io::stdout();
    kest_quickstart::quickstart(&mut out).await
}
