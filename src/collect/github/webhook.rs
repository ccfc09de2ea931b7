//! GitHub webhook deliveries (`POST /api/v1/webhooks/github`, wired by the API): signature check and the
//! records a delivery carries. Deliveries hold the same objects as the REST API, so the mapping is the
//! poller's ([`super::mapping`]); details a delivery lacks (PR commits and reviews, compare) are filled in
//! by the next poll, whose later version replaces the webhook's record.

use super::mapping::{self, GithubMapping};
use crate::domain::Record;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Checks `X-Hub-Signature-256: sha256=<hex>` against HMAC-SHA256(secret, body), in constant time.
/// A missing or malformed header is a failure.
pub fn verify_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

fn repo_of(payload: &Value) -> Result<String, String> {
    payload
        .pointer("/repository/full_name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "payload has no repository.full_name".to_string())
}

/// The records of one delivery of `event` (the `X-GitHub-Event` header). Events pavemeter does not use
/// (ping, push, …) and actions that carry nothing yet (a PR opened, a run queued) give no records.
pub fn webhook_records(event: &str, payload: &Value, m: &GithubMapping) -> Result<Vec<Record>, String> {
    if !payload.is_object() {
        return Err(format!(
            "`{event}` payload is {}, not a JSON object",
            crate::collect::json_kind(payload)
        ));
    }
    let out = match event {
        "deployment_status" => {
            let repo = repo_of(payload)?;
            let dep = payload
                .get("deployment")
                .ok_or("deployment_status payload has no `deployment`")?;
            let status = payload
                .get("deployment_status")
                .ok_or("deployment_status payload has no `deployment_status`")?;
            let service = m.default_service(&repo);
            mapping::deployment(&repo, &service, dep, std::slice::from_ref(status), m)
                .map(Record::Deployment)
                .into_iter()
                .collect()
        }
        "pull_request" => {
            let repo = repo_of(payload)?;
            let pr = payload
                .get("pull_request")
                .ok_or("pull_request payload has no `pull_request`")?;
            if payload.get("action").and_then(Value::as_str) != Some("closed") {
                Vec::new()
            } else {
                mapping::change(&repo, &m.default_service(&repo), pr, &[], &[])
                    .map(Record::Change)
                    .into_iter()
                    .collect()
            }
        }
        "workflow_run" => {
            let repo = repo_of(payload)?;
            let run = payload
                .get("workflow_run")
                .ok_or("workflow_run payload has no `workflow_run`")?;
            let service = m.default_service(&repo);
            let mut out: Vec<Record> = mapping::pipeline_run(&repo, &service, run, None)
                .map(Record::PipelineRun)
                .into_iter()
                .collect();
            out.extend(mapping::run_deployment(&repo, &service, run, m).map(Record::Deployment));
            out
        }
        "issues" => {
            let repo = repo_of(payload)?;
            let issue = payload.get("issue").ok_or("issues payload has no `issue`")?;
            mapping::issue_records(&repo, &m.default_service(&repo), issue, m)
        }
        _ => Vec::new(),
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_are_checked() {
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        let good = sign(b"s3cret", body);
        assert!(verify_signature(b"s3cret", body, Some(&good)));
        assert!(!verify_signature(b"other", body, Some(&good)));
        assert!(!verify_signature(b"s3cret", b"{}", Some(&good)));
        assert!(!verify_signature(b"s3cret", body, None));
        assert!(!verify_signature(b"s3cret", body, Some("sha1=abc")));
        assert!(!verify_signature(b"s3cret", body, Some("sha256=zz")));
    }
}
