//! Team and service slugs, and the salted respondent hash.

use sha2::{Digest, Sha256};

/// Normalises a team or service name to its slug form, or says why it cannot be one.
pub fn slug(raw: &str) -> Result<String, String> {
    let s = raw.trim().to_ascii_lowercase();
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 200 {
        return Err(format!("slug of {} bytes exceeds 200", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':')))
    {
        return Err(format!(
            "`{raw}` is not a slug: `{c}` is not allowed (letters, digits, - _ . / : only)"
        ));
    }
    Ok(s)
}

/// Turns any free name ("Payments API") into a slug ("payments-api"), for collectors mapping names.
pub fn slugify(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut dash = false;
    for c in raw.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            dash = false;
        } else if !dash && !out.is_empty() {
            out.push('-');
            dash = true;
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "unknown".into()
    } else {
        out
    }
}

/// A survey respondent is stored only as this hash: hex SHA-256 of salt and the lower-cased identity.
pub fn respondent_hash(salt: &str, respondent: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0u8]);
    h.update(respondent.trim().to_lowercase().as_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn slugs_are_normalised_and_checked() {
        assert_eq!(slug(" Payments ").unwrap(), "payments");
        assert!(slug("pay ments").is_err());
        assert_eq!(slugify("Payments API (EU)"), "payments-api-eu");
    }
    #[test]
    fn respondent_hash_is_salted_and_stable() {
        assert_eq!(respondent_hash("s", "A@x.io"), respondent_hash("s", "a@x.io"));
        assert_ne!(respondent_hash("s", "a@x.io"), respondent_hash("t", "a@x.io"));
        assert!(!respondent_hash("s", "a@x.io").contains('@'));
    }
}
