//! EDA's settings, with the paper's defaults and validation.

use serde::{Deserialize, Serialize};

use crate::error::{AugmentError, Result};

/// The strengths of EDA's four operations and the number of augmentations per sentence
/// (Wei & Zou 2019). Each α is the share of a sentence's words changed (`n = max(1, ⌊α·len⌋)`);
/// `p_rd` is each word's deletion probability. An operation with 0 is never chosen.
///
/// ```
/// use whetstone_augment::EdaConfig;
/// let c: EdaConfig = serde_json::from_str(r#"{"alpha_sr": 0.2}"#).unwrap();
/// assert_eq!((c.alpha_sr, c.alpha_ri, c.n_aug), (0.2, 0.1, 4));
/// assert!(EdaConfig { alpha_rs: 1.5, ..EdaConfig::default() }.validate().unwrap_err().to_string().contains("alpha_rs"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdaConfig {
    /// Synonym replacement's α (default 0.1).
    pub alpha_sr: f64,
    /// Random insertion's α (default 0.1).
    pub alpha_ri: f64,
    /// Random swap's α (default 0.1).
    pub alpha_rs: f64,
    /// Random deletion's per-word probability (default 0.1).
    pub p_rd: f64,
    /// Augmented sentences per original (default 4, the paper's choice beyond 5,000 examples).
    pub n_aug: usize,
}

impl Default for EdaConfig {
    fn default() -> Self {
        EdaConfig { alpha_sr: 0.1, alpha_ri: 0.1, alpha_rs: 0.1, p_rd: 0.1, n_aug: 4 }
    }
}

impl EdaConfig {
    /// The same α for all four operations.
    pub fn uniform(alpha: f64, n_aug: usize) -> Self {
        EdaConfig { alpha_sr: alpha, alpha_ri: alpha, alpha_rs: alpha, p_rd: alpha, n_aug }
    }

    /// The paper's recommended settings for a training set of `n` examples (its Table 3):
    /// 500 → α 0.05, 16 per sentence; 2,000 → 0.05, 8; 5,000 and more → 0.1, 4.
    pub fn for_train_size(n: usize) -> Self {
        match n {
            0..=1000 => Self::uniform(0.05, 16),
            1001..=3500 => Self::uniform(0.05, 8),
            _ => Self::uniform(0.1, 4),
        }
    }

    /// Each α in [0, 1] (the error names the field), at least one above 0, `n_aug` ≥ 1.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [("alpha_sr", self.alpha_sr), ("alpha_ri", self.alpha_ri), ("alpha_rs", self.alpha_rs), ("p_rd", self.p_rd)] {
            check_unit(field, v)?;
        }
        if [self.alpha_sr, self.alpha_ri, self.alpha_rs, self.p_rd].iter().all(|&a| a == 0.0) {
            return Err(AugmentError::config("alpha_sr", "all four operations are off (every α is 0); set at least one above 0"));
        }
        if self.n_aug == 0 {
            return Err(AugmentError::config("n_aug", "must be at least 1"));
        }
        Ok(())
    }
}

/// `value` must be a number in [0, 1]; the error names `field`.
pub fn check_unit(field: &str, value: f64) -> Result<()> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(AugmentError::config(field, format!("must be in [0, 1], got {value}")))
    }
}
