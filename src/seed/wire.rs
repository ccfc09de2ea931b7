//! A direct writer of a record's wire form: the same bytes as `serde_json::to_string(&record.to_wire())`
//! (field order, `null`s, RFC 3339 timestamps; the tests compare them), without building a JSON tree per
//! record, which is what makes multi-million-record NDJSON files quick to write.

use crate::domain::{CausedBy, Record, Ts};

/// Appends the record's wire form as one line of compact JSON (no newline) to `out`.
pub fn write_wire(record: &Record, out: &mut Vec<u8>) {
    let mut w = Obj { out, first: true };
    match record {
        Record::Service(r) => {
            w.str("id", &r.id);
            w.opt_str("team", r.team.as_deref());
            w.list("repositories", &r.repositories);
            w.opt_ts("created_at", r.created_at);
            w.opt_str("lifecycle", r.lifecycle.as_deref());
            w.opt_str("tier", r.tier.as_deref());
            w.key("capabilities");
            w.out.push(b'[');
            for (i, c) in r.capabilities.iter().enumerate() {
                if i > 0 {
                    w.out.push(b',');
                }
                let mut o = Obj {
                    out: &mut *w.out,
                    first: true,
                };
                o.str("name", &c.name);
                if let Some(t) = &c.template {
                    o.str("template", t);
                }
                if let Some(v) = &c.version {
                    o.str("version", v);
                }
                o.close();
            }
            w.out.push(b']');
        }
        Record::Deployment(r) => {
            w.str("id", &r.id);
            w.str("service", &r.service);
            w.opt_str("repository", r.repository.as_deref());
            w.str("environment", &r.environment);
            w.opt_str("environment_tier", r.environment_tier.as_deref());
            w.str("sha", &r.sha);
            w.str("status", &r.status);
            w.opt_ts("started_at", r.started_at);
            w.opt_ts("finished_at", r.finished_at);
            w.opt_str("pipeline_run", r.pipeline_run.as_deref());
            w.opt_str("source", r.source.as_deref());
            w.opt_str("url", r.url.as_deref());
            match &r.commits {
                Some(c) => w.list("commits", c),
                None => w.null("commits"),
            }
        }
        Record::Change(r) => {
            w.str("id", &r.id);
            w.str("repository", &r.repository);
            w.str("service", &r.service);
            w.opt_str("author", r.author.as_deref());
            w.key("is_bot");
            w.out.extend_from_slice(match r.is_bot {
                Some(true) => &b"true"[..],
                Some(false) => &b"false"[..],
                None => &b"null"[..],
            });
            w.opt_ts("first_commit_at", r.first_commit_at);
            w.opt_ts("opened_at", r.opened_at);
            w.opt_ts("first_review_at", r.first_review_at);
            w.ts("merged_at", r.merged_at);
            w.str("merge_sha", &r.merge_sha);
            w.list("labels", &r.labels);
            w.opt_str("title", r.title.as_deref());
        }
        Record::Incident(r) => {
            w.str("id", &r.id);
            w.list("services", &r.services);
            w.opt_str("severity", r.severity.as_deref());
            w.ts("opened_at", r.opened_at);
            w.opt_ts("acknowledged_at", r.acknowledged_at);
            w.opt_ts("resolved_at", r.resolved_at);
            w.opt_str("source", r.source.as_deref());
            w.opt_str("url", r.url.as_deref());
            w.key("caused_by");
            match &r.caused_by {
                None => w.out.extend_from_slice(b"null"),
                Some(c) => {
                    let mut o = Obj {
                        out: &mut *w.out,
                        first: true,
                    };
                    match c {
                        CausedBy::Deployment(s) => o.str("deployment", s),
                        CausedBy::Sha(s) => o.str("sha", s),
                        CausedBy::Change(s) => o.str("change", s),
                        CausedBy::None(b) => {
                            o.key("none");
                            o.out.extend_from_slice(if *b { &b"true"[..] } else { &b"false"[..] });
                        }
                    }
                    o.close();
                }
            }
        }
        Record::Ticket(r) => {
            w.str("id", &r.id);
            w.opt_str("source", r.source.as_deref());
            w.opt_str("team", r.team.as_deref());
            w.str("category", &r.category);
            w.ts("created_at", r.created_at);
            w.opt_ts("resolved_at", r.resolved_at);
        }
        Record::Survey(r) => {
            w.str("wave", &r.wave);
            w.ts("submitted_at", r.submitted_at);
            w.str("respondent", &r.respondent);
            w.opt_str("team", r.team.as_deref());
            w.opt_num("nps", r.nps.map(u64::from));
            w.key("answers");
            let mut o = Obj {
                out: &mut *w.out,
                first: true,
            };
            for (q, v) in &r.answers {
                o.num(q, *v as u64);
            }
            o.close();
            w.opt_str("comment", r.comment.as_deref());
        }
        Record::PipelineRun(r) => {
            w.str("id", &r.id);
            w.str("service", &r.service);
            w.str("workflow", &r.workflow);
            w.str("conclusion", &r.conclusion);
            w.ts("started_at", r.started_at);
            w.ts("finished_at", r.finished_at);
            w.opt_num("attempt", r.attempt.map(u64::from));
            w.opt_str("failure_class", r.failure_class.as_deref());
        }
        Record::SelfService(r) => {
            w.str("id", &r.id);
            w.str("kind", &r.kind);
            w.opt_str("team", r.team.as_deref());
            w.opt_str("service", r.service.as_deref());
            w.ts("requested_at", r.requested_at);
            w.ts("ready_at", r.ready_at);
        }
    }
    w.close();
}

struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Obj<'_> {
    fn key(&mut self, k: &str) {
        self.out.push(if self.first { b'{' } else { b',' });
        self.first = false;
        escape(k, self.out);
        self.out.push(b':');
    }
    fn close(self) {
        self.out
            .extend_from_slice(if self.first { &b"{}"[..] } else { &b"}"[..] });
    }
    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        escape(v, self.out);
    }
    fn null(&mut self, k: &str) {
        self.key(k);
        self.out.extend_from_slice(b"null");
    }
    fn opt_str(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(k, v),
            None => self.null(k),
        }
    }
    fn num(&mut self, k: &str, v: u64) {
        self.key(k);
        self.out.extend_from_slice(v.to_string().as_bytes());
    }
    fn opt_num(&mut self, k: &str, v: Option<u64>) {
        match v {
            Some(v) => self.num(k, v),
            None => self.null(k),
        }
    }
    fn ts(&mut self, k: &str, t: Ts) {
        self.key(k);
        rfc3339(t.secs(), self.out);
    }
    fn opt_ts(&mut self, k: &str, t: Option<Ts>) {
        match t {
            Some(t) => self.ts(k, t),
            None => self.null(k),
        }
    }
    fn list<S: AsRef<str>>(&mut self, k: &str, items: &[S]) {
        self.key(k);
        self.out.push(b'[');
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            escape(s.as_ref(), self.out);
        }
        self.out.push(b']');
    }
}

/// Whether any byte of `bytes` needs escaping in JSON (`"`, `\\`, control characters). Eight bytes at a
/// time: almost every string here (ids, shas, names) needs none, and the crate's debug profile makes a
/// per-byte loop the bulk of the cost of writing NDJSON.
fn needs_escape(bytes: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(LO) & !v & HI != 0;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let x = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Any byte below 0x20 (exact for thresholds up to 0x80), or equal to `"` or `\\`.
        if x.wrapping_sub(LO * 0x20) & !x & HI != 0 || has_zero(x ^ (LO * 0x22)) || has_zero(x ^ (LO * 0x5C)) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// A JSON string literal, escaped exactly as serde_json escapes it.
fn escape(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0C => b"\\f",
            0..=0x1F => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xF) as usize]]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `"YYYY-MM-DDThh:mm:ssZ"` (with quotes), as [`Ts::rfc3339`] formats it.
fn rfc3339(secs: i64, out: &mut Vec<u8>) {
    let ts = Ts::from_secs(secs);
    out.push(b'"');
    if ts.write_civil(b'T', out) {
        out.push(b'Z');
    } else {
        out.extend_from_slice(ts.rfc3339().as_bytes());
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_the_domain_formatter() {
        for secs in [
            0,
            951_782_400,
            1_709_164_799,
            1_735_689_599,
            4_102_444_800,
            -86_400,
            1_782_907_200,
        ] {
            let mut out = Vec::new();
            rfc3339(secs, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("\"{}\"", Ts::from_secs(secs).rfc3339())
            );
        }
    }

    #[test]
    fn strings_are_escaped_like_serde_json() {
        let long = [
            "0123456789abcdef",
            "0123456\"89abcdef",
            "0123456789a\u{1f}cdef",
            "01\\3456789abcdef",
            "01234567\n",
        ];
        for s in [
            "plain",
            "Revert \"fix: x\"",
            "back\\slash",
            "tab\tnew\nline\u{1}",
            "ünï",
            "",
            "\u{7f}~ !#",
        ]
        .iter()
        .chain(&long)
        {
            let mut out = Vec::new();
            escape(s, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(s).unwrap());
        }
    }
}
