//! The polite HTTP client every collector uses:
//! - pages by following `Link: <…>; rel="next"` exactly as the server wrote it (never builds page URLs);
//! - conditional requests: the ETag of a URL is kept in the store's cursor table under scope `etag:<url>`;
//!   a 304 costs nothing on GitHub's rate limit and yields no body. The ETag is handed back to the caller,
//!   which commits it *after* storing the batch, so a crash never turns into a 304 that hides data;
//! - waits out `Retry-After`, `x-ratelimit-remaining: 0` + `x-ratelimit-reset` and secondary rate limits
//!   (403/429), up to a cap; bounded, jittered retries on 5xx, timeouts and connection errors;
//! - at most `concurrency` requests in flight per source (a semaphore), every request counted.
//!
//! Errors (`anyhow`) name the source, the scope, the method and URL, the status and the server's message.
//! Credentials live only in request headers, never in URLs, logs or errors.

use super::{Opts, RunCtx};
use anyhow::{anyhow, Context};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Semaphore};

/// How a source authenticates. `Debug` never shows the secret.
#[derive(Clone)]
pub enum Auth {
    None,
    Bearer(String),
    Basic {
        user: String,
        password: String,
    },
    /// A literal header, e.g. PagerDuty's `Authorization: Token token=…`.
    Header(HeaderName, String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Bearer(_) => "Auth::Bearer(***)",
            Auth::Basic { .. } => "Auth::Basic(***)",
            Auth::Header(..) => "Auth::Header(***)",
        })
    }
}

#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub concurrency: usize,
    /// Retries after a 5xx, timeout or connection error.
    pub max_retries: u32,
    /// Waits for rate limits before giving up on a request.
    pub max_rate_limit_waits: u32,
    /// The longest single rate-limit wait; a reset further away fails the scope instead of hanging the run.
    pub max_wait: Duration,
    pub backoff: Duration,
    pub timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            concurrency: 4,
            max_retries: 3,
            max_rate_limit_waits: 5,
            max_wait: Duration::from_secs(900),
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(30),
        }
    }
}

impl HttpOptions {
    /// Keys `concurrency`, `max_retries`, `max_rate_limit_wait` (duration), `retry_backoff_ms`, `timeout`.
    pub fn from_opts(opts: &Opts) -> anyhow::Result<Self> {
        let d = HttpOptions::default();
        Ok(HttpOptions {
            concurrency: opts.u64_or("concurrency", d.concurrency as u64)?.max(1) as usize,
            max_retries: opts.u64_or("max_retries", d.max_retries as u64)? as u32,
            max_rate_limit_waits: opts.u64_or("max_rate_limit_waits", d.max_rate_limit_waits as u64)? as u32,
            max_wait: opts.duration_or("max_rate_limit_wait", "15m")?,
            backoff: Duration::from_millis(opts.u64_or("retry_backoff_ms", d.backoff.as_millis() as u64)?),
            timeout: opts.duration_or("timeout", "30s")?,
        })
    }
}

/// One answer, body read.
#[derive(Debug)]
pub struct Response {
    pub method: Method,
    pub url: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Response {
    pub fn not_modified(&self) -> bool {
        self.status == StatusCode::NOT_MODIFIED
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn etag(&self) -> Option<String> {
        self.header("etag").map(str::to_string)
    }

    /// The `rel="next"` target of the `Link` header, verbatim.
    pub fn next_link(&self) -> Option<String> {
        self.header("link").and_then(next_link)
    }

    pub fn json(&self, source: &str, scope: &str) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "source `{source}` scope `{scope}`: {} {} answered a body that is not JSON",
                self.method, self.url
            )
        })
    }

    /// Fails unless 2xx (or 304), with the server's own message.
    pub fn ensure_ok(self, source: &str, scope: &str) -> anyhow::Result<Response> {
        if self.status.is_success() || self.not_modified() {
            return Ok(self);
        }
        Err(anyhow!(
            "source `{source}` scope `{scope}`: {} {} answered {}{}",
            self.method,
            self.url,
            self.status,
            server_message(&self.body)
        ))
    }
}

/// `": <message>"` from a JSON error body (`message`, `errorMessages`, `error.message`), else a short text prefix.
fn server_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => v
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
            .or_else(|| {
                v.get("errorMessages")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
            })
            .unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string(),
    };
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// Parses an RFC 8288 `Link` header and returns the `rel="next"` URL.
pub fn next_link(header: &str) -> Option<String> {
    for part in header.split(',') {
        let mut pieces = part.split(';');
        let target = pieces.next()?.trim();
        let is_next = pieces.any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=")
                .map(|r| r.trim_matches('"').split_whitespace().any(|r| r == "next"))
                .unwrap_or(false)
        });
        if is_next {
            return target
                .strip_prefix('<')
                .and_then(|t| t.strip_suffix('>'))
                .map(str::to_string);
        }
    }
    None
}

/// A paged list fetched to its end (or to where the caller stopped it).
#[derive(Debug, Default)]
pub struct Paged {
    pub items: Vec<Value>,
    /// The first page answered 304: nothing changed since the ETag was stored.
    pub not_modified: bool,
    /// `(cursor scope, etag)` to commit after the items are stored.
    pub etag: Option<(String, String)>,
    pub pages: u32,
}

pub struct PoliteClient {
    source: String,
    http: reqwest::Client,
    auth: Auth,
    opts: HttpOptions,
    sem: Arc<Semaphore>,
    /// Set when a response says the quota is spent: every request waits until then.
    blocked_until: Mutex<Option<Instant>>,
    extra_headers: HeaderMap,
}

impl PoliteClient {
    pub fn new(source: &str, auth: Auth, opts: HttpOptions, extra_headers: &[(&str, &str)]) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("pavemeter/", env!("CARGO_PKG_VERSION")))
            .timeout(opts.timeout)
            .build()
            .with_context(|| format!("source `{source}`: building the HTTP client"))?;
        let mut headers = HeaderMap::new();
        for (k, v) in extra_headers {
            headers.insert(HeaderName::from_bytes(k.as_bytes())?, HeaderValue::from_str(v)?);
        }
        Ok(PoliteClient {
            source: source.to_string(),
            http,
            auth,
            sem: Arc::new(Semaphore::new(opts.concurrency)),
            opts,
            blocked_until: Mutex::new(None),
            extra_headers: headers,
        })
    }

    pub fn concurrency(&self) -> usize {
        self.opts.concurrency
    }

    pub async fn get(
        &self,
        ctx: &RunCtx,
        scope: &str,
        url: &str,
        if_none_match: Option<&str>,
    ) -> anyhow::Result<Response> {
        self.request(ctx, scope, Method::GET, url, None, &[], if_none_match)
            .await
    }

    /// GET that must succeed, parsed as JSON.
    pub async fn get_json(&self, ctx: &RunCtx, scope: &str, url: &str) -> anyhow::Result<Value> {
        self.get(ctx, scope, url, None)
            .await?
            .ensure_ok(&self.source, scope)?
            .json(&self.source, scope)
    }

    pub async fn post_json(&self, ctx: &RunCtx, scope: &str, url: &str, body: &Value) -> anyhow::Result<Value> {
        self.request(ctx, scope, Method::POST, url, Some(body), &[], None)
            .await?
            .ensure_ok(&self.source, scope)?
            .json(&self.source, scope)
    }

    /// A GET with `If-None-Match` from the stored ETag of `url` (when `ctx` allows conditional requests).
    /// Returns the response and the `(cursor scope, etag)` to commit once its data is stored.
    pub async fn get_conditional(
        &self,
        ctx: &RunCtx,
        scope: &str,
        url: &str,
        accept: Option<&str>,
    ) -> anyhow::Result<(Response, Option<(String, String)>)> {
        let key = format!("etag:{url}");
        let stored = if ctx.conditional() {
            ctx.cursor(&key).await?
        } else {
            None
        };
        let headers: Vec<(&str, String)> = accept.map(|a| vec![("accept", a.to_string())]).unwrap_or_default();
        let resp = self
            .request(ctx, scope, Method::GET, url, None, &headers, stored.as_deref())
            .await?;
        let etag = match (resp.status.is_success(), resp.etag()) {
            (true, Some(e)) if stored.as_deref() != Some(e.as_str()) => Some((key, e)),
            _ => None,
        };
        Ok((resp, etag))
    }

    /// Follows `Link rel="next"` from `url`, collecting the items of each page (the page itself when it is an
    /// array, else `page[items_key]`). With `conditional`, the first page is sent with the stored ETag;
    /// `keep_going` sees each page's items and returns false to stop before the next page (an incremental
    /// scope reached its cursor).
    pub async fn paginate(
        &self,
        ctx: &RunCtx,
        scope: &str,
        url: &str,
        items_key: Option<&str>,
        conditional: bool,
        mut keep_going: impl FnMut(&[Value]) -> bool,
    ) -> anyhow::Result<Paged> {
        let mut out = Paged::default();
        let (first, etag) = if conditional {
            self.get_conditional(ctx, scope, url, None).await?
        } else {
            (self.get(ctx, scope, url, None).await?, None)
        };
        if first.not_modified() {
            out.not_modified = true;
            out.pages = 1;
            return Ok(out);
        }
        out.etag = etag;
        let mut resp = first.ensure_ok(&self.source, scope)?;
        loop {
            out.pages += 1;
            let page = resp.json(&self.source, scope)?;
            let items = match items_key {
                None => page,
                Some(k) => page.get(k).cloned().unwrap_or(Value::Null),
            };
            let Value::Array(items) = items else {
                return Err(anyhow!(
                    "source `{}` scope `{scope}`: {} answered {} where a list{} was expected (renamed field?)",
                    self.source,
                    resp.url,
                    super::json_kind(&items),
                    items_key.map(|k| format!(" under `{k}`")).unwrap_or_default()
                ));
            };
            let go_on = keep_going(&items);
            out.items.extend(items);
            let Some(next) = resp.next_link().filter(|_| go_on) else {
                break;
            };
            resp = self
                .get(ctx, scope, &next, None)
                .await?
                .ensure_ok(&self.source, scope)?;
        }
        Ok(out)
    }

    /// Sends one request, waiting out rate limits and retrying transient failures. Returns any final answer
    /// (including 4xx) for the caller to judge; fails only when retries or waits are exhausted.
    #[tracing::instrument(skip(self, ctx, body, headers, if_none_match), fields(source = %self.source))]
    pub async fn request(
        &self,
        ctx: &RunCtx,
        scope: &str,
        method: Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
        if_none_match: Option<&str>,
    ) -> anyhow::Result<Response> {
        let mut failures = 0u32;
        let mut waits = 0u32;
        loop {
            self.wait_for_quota().await;
            let permit = self.sem.acquire().await.context("the request limiter was closed")?;
            // Per-request headers replace the source's defaults (e.g. a raw `accept` for file contents).
            let mut header_map = self.extra_headers.clone();
            for (k, v) in headers {
                header_map.insert(
                    HeaderName::from_bytes(k.as_bytes()).context("invalid header name")?,
                    HeaderValue::from_str(v).context("invalid header value")?,
                );
            }
            let mut req = self.http.request(method.clone(), url).headers(header_map);
            req = match &self.auth {
                Auth::None => req,
                Auth::Bearer(t) => req.bearer_auth(t),
                Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
                Auth::Header(name, value) => req.header(name.clone(), value.as_str()),
            };
            if let Some(tag) = if_none_match {
                req = req.header("if-none-match", tag);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            ctx.stats.add_request();
            let sent = req.send().await;
            let result = match sent {
                Ok(r) => {
                    let status = r.status();
                    let headers = r.headers().clone();
                    match r.bytes().await {
                        Ok(body) => Ok(Response {
                            method: method.clone(),
                            url: url.to_string(),
                            status,
                            headers,
                            body,
                        }),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            drop(permit);
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    // Connection errors and timeouts are worth a retry; the reqwest message carries no headers.
                    if failures < self.opts.max_retries {
                        failures += 1;
                        tracing::warn!(attempt = failures, error = %without_url(&e), "Request failed, retrying");
                        tokio::time::sleep(self.backoff(failures)).await;
                        continue;
                    }
                    return Err(anyhow!(
                        "source `{}` scope `{scope}`: {method} {url} failed after {} attempts: {}",
                        self.source,
                        failures + 1,
                        without_url(&e)
                    ));
                }
            };
            self.note_quota(ctx, &resp).await;
            if resp.not_modified() {
                ctx.stats.add_not_modified();
                return Ok(resp);
            }
            if let Some(wait) = rate_limit_wait(&resp) {
                if waits >= self.opts.max_rate_limit_waits || wait > self.opts.max_wait {
                    return Err(anyhow!(
                        "source `{}` scope `{scope}`: {method} {url} is rate limited ({}); the limit resets in {}s, more than the {}s this run may wait (max_rate_limit_wait) or after {waits} waits",
                        self.source,
                        resp.status,
                        wait.as_secs(),
                        self.opts.max_wait.as_secs()
                    ));
                }
                waits += 1;
                tracing::warn!(status = %resp.status, wait_secs = wait.as_secs_f64(), "Rate limited, waiting for the reset");
                tokio::time::sleep(wait).await;
                continue;
            }
            if resp.status.is_server_error() && failures < self.opts.max_retries {
                failures += 1;
                tracing::warn!(status = %resp.status, attempt = failures, "Server error, retrying");
                tokio::time::sleep(self.backoff(failures)).await;
                continue;
            }
            if resp.status.is_server_error() {
                return Err(anyhow!(
                    "source `{}` scope `{scope}`: {method} {url} answered {} after {} attempts{}",
                    self.source,
                    resp.status,
                    failures + 1,
                    server_message(&resp.body)
                ));
            }
            return Ok(resp);
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        use rand::Rng;
        let base = self.opts.backoff.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1) as i32);
        let jitter = rand::thread_rng().gen_range(0.5..1.5);
        Duration::from_secs_f64((base * jitter).min(60.0))
    }

    async fn wait_for_quota(&self) {
        let until = *self.blocked_until.lock().await;
        if let Some(t) = until {
            let now = Instant::now();
            if t > now {
                tracing::info!(
                    wait_secs = (t - now).as_secs_f64(),
                    "Rate limit spent, waiting for the reset"
                );
                tokio::time::sleep(t - now).await;
            }
        }
    }

    /// Remembers the quota a response reports; a spent quota blocks later requests until its reset.
    async fn note_quota(&self, ctx: &RunCtx, resp: &Response) {
        let Some(remaining) = resp
            .header("x-ratelimit-remaining")
            .and_then(|v| v.trim().parse::<i64>().ok())
        else {
            return;
        };
        ctx.stats.set_rate_limit_remaining(remaining);
        if remaining <= 0 && resp.status.is_success() {
            if let Some(wait) = reset_wait(resp).filter(|w| *w <= self.opts.max_wait) {
                *self.blocked_until.lock().await = Some(Instant::now() + wait);
            }
        }
    }
}

/// Seconds until `x-ratelimit-reset` (epoch seconds; some recordings use milliseconds).
fn reset_wait(resp: &Response) -> Option<Duration> {
    let reset = resp.header("x-ratelimit-reset")?.trim().parse::<f64>().ok()?;
    let reset = if reset > 1e11 { reset / 1000.0 } else { reset };
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    // A reset in the past (clock skew) still deserves a moment before the next try.
    Some(Duration::from_secs_f64((reset - now).max(0.0) + 0.25))
}

/// How long a 403/429 asks us to wait, or `None` when it is not a rate limit.
fn rate_limit_wait(resp: &Response) -> Option<Duration> {
    let status = resp.status.as_u16();
    if status != 429 && status != 403 {
        return None;
    }
    if let Some(secs) = resp.header("retry-after").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    if let Some(date) = resp
        .header("retry-after")
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
    {
        let secs = (date.timestamp() - chrono::Utc::now().timestamp()).max(0);
        return Some(Duration::from_secs(secs as u64));
    }
    let spent = resp
        .header("x-ratelimit-remaining")
        .map(|v| v.trim() == "0")
        .unwrap_or(false);
    if spent {
        return reset_wait(resp);
    }
    let text = String::from_utf8_lossy(&resp.body).to_ascii_lowercase();
    if status == 429 || text.contains("rate limit") {
        // GitHub's secondary limit without headers: its docs ask for at least a minute.
        return Some(Duration::from_secs(60));
    }
    None
}

/// reqwest errors print the URL; ours carry no secrets, but keep the message short and uniform.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({detail})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_reads_the_octokit_headers() {
        let h = "<https://api.github.com/repositories/1000/issues?per_page=3&page=1>; rel=\"prev\", <https://api.github.com/repositories/1000/issues?per_page=3&page=3>; rel=\"next\", <https://api.github.com/repositories/1000/issues?per_page=3&page=5>; rel=\"last\"";
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/repositories/1000/issues?per_page=3&page=3")
        );
        assert_eq!(
            next_link("<https://x/a?page=4>; rel=\"prev\", <https://x/a?page=1>; rel=\"first\""),
            None
        );
    }

    #[test]
    fn auth_debug_hides_the_secret() {
        let a = Auth::Bearer("ghp_secret".into());
        assert!(!format!("{a:?}").contains("ghp_secret"));
        let b = Auth::Basic {
            user: "me@x.io".into(),
            password: "tok".into(),
        };
        assert!(!format!("{b:?}").contains("tok"));
    }
}
