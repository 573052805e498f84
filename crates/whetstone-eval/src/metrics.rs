//! Multi-class classification metrics computed from a confusion matrix.
//!
//! Conventions follow scikit-learn so numbers are comparable with published
//! baselines:
//! * per-class precision / recall / F1 are 0 when their denominator is 0
//!   (`zero_division=0`);
//! * macro-F1 is the unweighted mean of per-class F1 over **all** classes in
//!   `label_names` (like `f1_score(..., labels=range(k), average="macro")`);
//! * MCC is Gorodkin's multi-class generalisation (R_K statistic, Gorodkin 2004,
//!   "Comparing two K-category assignments by a K-category correlation
//!   coefficient"), which reduces to the binary phi coefficient for two classes,
//!   and is 0 when undefined (as `sklearn.metrics.matthews_corrcoef`).

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Human-readable class name (from `label_names`).
    pub label: String,
    /// TP / (TP + FP); 0 if the class was never predicted.
    pub precision: f64,
    /// TP / (TP + FN); 0 if the class never occurs in the gold labels.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 if both are 0.
    pub f1: f64,
    /// Number of gold examples of this class.
    pub support: u64,
}

/// Summary of a classifier's predictions against gold labels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Fraction of examples predicted correctly.
    pub accuracy: f64,
    /// Unweighted mean of per-class F1.
    pub macro_f1: f64,
    /// Matthews correlation coefficient (multi-class, Gorodkin).
    pub mcc: f64,
    /// Per-class metrics, in `label_names` order.
    pub per_class: Vec<ClassMetrics>,
    /// Confusion matrix indexed `[true][pred]`.
    pub confusion: Vec<Vec<u64>>,
    /// Number of examples.
    pub n: usize,
}

impl ClassificationReport {
    /// One line for a terminal: accuracy, macro-F1, MCC and the number of examples.
    pub fn summary(&self) -> String {
        format!("accuracy {:.4}  macro-F1 {:.4}  MCC {:.4}  ({} examples)", self.accuracy, self.macro_f1, self.mcc, self.n)
    }

    /// The majority-class baseline: the accuracy of always answering the most frequent true
    /// class, and that class's label. Ties go to the class listed first. `None` for an empty
    /// report.
    pub fn majority_baseline(&self) -> Option<(f64, &str)> {
        let top = self.per_class.iter().rev().max_by_key(|m| m.support)?;
        (self.n > 0).then(|| (top.support as f64 / self.n as f64, top.label.as_str()))
    }

    /// Look up a headline metric by name: `"accuracy"`, `"macro_f1"` or
    /// `"mcc"`. Used by trainers to select the checkpoint metric from a recipe
    /// string; unknown names give `None` so the caller can report them.
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "accuracy" => Some(self.accuracy),
            "macro_f1" => Some(self.macro_f1),
            "mcc" => Some(self.mcc),
            _ => None,
        }
    }
}

/// Compute accuracy, macro-F1, MCC, per-class metrics and the confusion matrix.
///
/// `labels[i]` and `preds[i]` are class indices into `label_names`.
///
/// # Errors
/// [`EvalError::LengthMismatch`] if the slices differ in length,
/// [`EvalError::Empty`] if they are empty, [`EvalError::NoClasses`] if
/// `label_names` is empty, and [`EvalError::ClassOutOfRange`] for any index
/// outside `0..label_names.len()`.
pub fn classification_report(
    labels: &[i64],
    preds: &[i64],
    label_names: &[String],
) -> Result<ClassificationReport, EvalError> {
    if labels.len() != preds.len() {
        return Err(EvalError::LengthMismatch {
            labels: labels.len(),
            preds: preds.len(),
        });
    }
    if labels.is_empty() {
        return Err(EvalError::Empty);
    }
    let k = label_names.len();
    if k == 0 {
        return Err(EvalError::NoClasses);
    }

    let mut confusion = vec![vec![0u64; k]; k];
    for (i, (&t, &p)) in labels.iter().zip(preds).enumerate() {
        let t = class_index(t, "labels", i, k)?;
        let p = class_index(p, "preds", i, k)?;
        confusion[t][p] += 1;
    }
    Ok(report_from_confusion(confusion, label_names))
}

/// Validate and convert one class id.
fn class_index(
    value: i64,
    which: &'static str,
    index: usize,
    k: usize,
) -> Result<usize, EvalError> {
    usize::try_from(value)
        .ok()
        .filter(|&c| c < k)
        .ok_or(EvalError::ClassOutOfRange {
            which,
            index,
            value,
            n_classes: k,
        })
}

/// `num / den`, or 0 when `den` is 0 (sklearn's `zero_division=0`).
fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// Derive every metric from a square, non-empty confusion matrix.
fn report_from_confusion(confusion: Vec<Vec<u64>>, label_names: &[String]) -> ClassificationReport {
    let k = confusion.len();
    let true_counts: Vec<u64> = confusion.iter().map(|row| row.iter().sum()).collect();
    let pred_counts: Vec<u64> = (0..k)
        .map(|j| confusion.iter().map(|row| row[j]).sum())
        .collect();
    let n: u64 = true_counts.iter().sum();
    let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();

    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let precision = ratio(tp, pred_counts[c] as f64);
            let recall = ratio(tp, true_counts[c] as f64);
            ClassMetrics {
                label: label_names[c].clone(),
                precision,
                recall,
                f1: ratio(2.0 * precision * recall, precision + recall),
                support: true_counts[c],
            }
        })
        .collect();

    let macro_f1 = per_class.iter().map(|m| m.f1).sum::<f64>() / k as f64;
    let mcc = gorodkin_mcc(n, correct, &true_counts, &pred_counts);

    ClassificationReport {
        accuracy: ratio(correct as f64, n as f64),
        macro_f1,
        mcc,
        per_class,
        confusion,
        n: n as usize,
    }
}

/// Multi-class MCC:
/// `(c·s − Σ p_k t_k) / sqrt((s² − Σ p_k²)(s² − Σ t_k²))`
/// with `c` correct, `s` total, `t_k`/`p_k` true/predicted counts of class k
/// (sklearn's formulation). Computed in f64 to avoid u64 overflow of `s²`.
fn gorodkin_mcc(n: u64, correct: u64, true_counts: &[u64], pred_counts: &[u64]) -> f64 {
    let s = n as f64;
    let c = correct as f64;
    let pt: f64 = true_counts
        .iter()
        .zip(pred_counts)
        .map(|(&t, &p)| t as f64 * p as f64)
        .sum();
    let pp: f64 = pred_counts.iter().map(|&p| (p as f64).powi(2)).sum();
    let tt: f64 = true_counts.iter().map(|&t| (t as f64).powi(2)).sum();
    let den = ((s * s - pp) * (s * s - tt)).sqrt();
    if den == 0.0 || !den.is_finite() {
        0.0
    } else {
        (c * s - pt) / den
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        ["neg", "pos", "neutral", "other"][..k]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn majority_baseline_counts_true_labels_and_breaks_ties_to_the_first_class() {
        // True labels: 2 × neg, 3 × pos, 1 × neutral; the predictions must not matter.
        let rep = classification_report(&[0, 1, 1, 0, 1, 2], &[2, 2, 2, 2, 2, 2], &names(3)).unwrap();
        let (acc, label) = rep.majority_baseline().unwrap();
        assert!(close(acc, 0.5) && label == "pos", "{acc} {label}");
        // A tie between neg and pos goes to neg, listed first.
        let tie = classification_report(&[1, 0, 1, 0], &[1, 1, 1, 1], &names(2)).unwrap();
        assert_eq!(tie.majority_baseline(), Some((0.5, "neg")));
    }

    /// Build label/pred vectors realising a given confusion matrix.
    fn from_confusion(cm: &[&[u64]]) -> (Vec<i64>, Vec<i64>) {
        let (mut l, mut p) = (vec![], vec![]);
        for (t, row) in cm.iter().enumerate() {
            for (q, &count) in row.iter().enumerate() {
                for _ in 0..count {
                    l.push(t as i64);
                    p.push(q as i64);
                }
            }
        }
        (l, p)
    }

    /// Confusion [true][pred]:
    /// ```text
    ///        a  b  c   | t
    ///   a    2  1  0   | 3
    ///   b    1  2  0   | 3
    ///   c    0  1  3   | 4
    ///   p    3  4  3     n = 10
    /// ```
    /// accuracy = 7/10.
    /// a: P = 2/3, R = 2/3, F1 = 2/3
    /// b: P = 2/4, R = 2/3, F1 = 2·(1/2)(2/3)/(7/6) = 4/7
    /// c: P = 3/3, R = 3/4, F1 = 2·(3/4)/(7/4) = 6/7
    /// macro-F1 = (2/3 + 4/7 + 6/7)/3 = (14/21 + 30/21)/3 = 44/63
    /// MCC: c·s = 70, Σ p_k t_k = 9 + 12 + 12 = 33 → numerator 37;
    ///      s² − Σp² = 100 − 34 = 66, s² − Σt² = 100 − 34 = 66 → MCC = 37/66.
    #[test]
    fn three_class_hand_computed() {
        let (l, p) = from_confusion(&[&[2, 1, 0], &[1, 2, 0], &[0, 1, 3]]);
        let r = classification_report(&l, &p, &names(3)).unwrap();
        assert_eq!(r.n, 10);
        assert_eq!(
            r.confusion,
            vec![vec![2, 1, 0], vec![1, 2, 0], vec![0, 1, 3]]
        );
        assert!(close(r.accuracy, 0.7));
        assert!(close(r.per_class[0].f1, 2.0 / 3.0));
        assert!(close(r.per_class[1].precision, 0.5));
        assert!(close(r.per_class[1].f1, 4.0 / 7.0));
        assert!(close(r.per_class[2].recall, 0.75));
        assert!(close(r.per_class[2].f1, 6.0 / 7.0));
        assert_eq!(r.per_class[2].support, 4);
        assert!(close(r.macro_f1, 44.0 / 63.0), "{}", r.macro_f1);
        assert!(close(r.mcc, 37.0 / 66.0), "{}", r.mcc);
        assert_eq!(r.metric("mcc"), Some(r.mcc));
        assert_eq!(r.metric("macro_f1"), Some(r.macro_f1));
        assert_eq!(r.metric("accuracy"), Some(0.7));
        assert_eq!(r.metric("f1"), None);
    }

    /// Binary MCC must equal phi = (TP·TN − FP·FN)/sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)).
    #[test]
    fn binary_mcc_is_phi() {
        for &(tn, fp, fn_, tp) in &[(5u64, 2u64, 1u64, 4u64), (50, 3, 17, 9), (1, 9, 8, 2)] {
            let (l, p) = from_confusion(&[&[tn, fp], &[fn_, tp]]);
            let r = classification_report(&l, &p, &names(2)).unwrap();
            let (tp, tn, fp, fn_) = (tp as f64, tn as f64, fp as f64, fn_ as f64);
            let phi =
                (tp * tn - fp * fn_) / ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
            assert!((r.mcc - phi).abs() < 1e-12, "mcc {} phi {}", r.mcc, phi);
        }
        // (5,2,1,4): (20-2)/sqrt(6·5·7·6) = 18/sqrt(1260) ≈ 0.50709255
        let (l, p) = from_confusion(&[&[5, 2], &[1, 4]]);
        let r = classification_report(&l, &p, &names(2)).unwrap();
        assert!((r.mcc - 0.507_092_552_837_11).abs() < 1e-12);
    }

    #[test]
    fn perfect_predictions() {
        let l = vec![0, 1, 2, 2, 1, 0, 3];
        let r = classification_report(&l, &l, &names(4)).unwrap();
        assert_eq!(r.accuracy, 1.0);
        assert_eq!(r.macro_f1, 1.0);
        assert!(close(r.mcc, 1.0));
    }

    /// Predicting only class 0 on [0,1,0,1]: MCC denominator is 0 → 0;
    /// class 1 is never predicted → precision 0 (zero_division), recall 0, F1 0;
    /// class 0: P = 1/2, R = 1, F1 = 2/3 → macro-F1 = 1/3.
    #[test]
    fn constant_predictions_zero_division() {
        let r = classification_report(&[0, 1, 0, 1], &[0, 0, 0, 0], &names(2)).unwrap();
        assert_eq!(r.mcc, 0.0);
        assert_eq!(r.per_class[1].precision, 0.0);
        assert_eq!(r.per_class[1].recall, 0.0);
        assert_eq!(r.per_class[1].f1, 0.0);
        assert!(close(r.per_class[0].f1, 2.0 / 3.0));
        assert!(close(r.macro_f1, 1.0 / 3.0));
        assert_eq!(r.accuracy, 0.5);
        assert!(r.mcc.is_finite() && r.macro_f1.is_finite());
    }

    #[test]
    fn inverted_binary_is_minus_one() {
        let r = classification_report(&[0, 1, 0, 1], &[1, 0, 1, 0], &names(2)).unwrap();
        assert!(close(r.mcc, -1.0));
    }

    #[test]
    fn input_errors() {
        let n = names(2);
        assert!(matches!(
            classification_report(&[0, 1], &[0], &n),
            Err(EvalError::LengthMismatch {
                labels: 2,
                preds: 1
            })
        ));
        assert!(matches!(
            classification_report(&[], &[], &n),
            Err(EvalError::Empty)
        ));
        assert!(matches!(
            classification_report(&[0], &[0], &[]),
            Err(EvalError::NoClasses)
        ));
        match classification_report(&[0, 1], &[0, 2], &n) {
            Err(EvalError::ClassOutOfRange {
                which: "preds",
                index: 1,
                value: 2,
                n_classes: 2,
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            classification_report(&[-1], &[0], &n),
            Err(EvalError::ClassOutOfRange {
                which: "labels",
                ..
            })
        ));
    }

    #[test]
    fn serde_round_trip() {
        let r = classification_report(&[0, 1, 1], &[0, 1, 0], &names(2)).unwrap();
        let s = serde_json::to_string(&r).unwrap();
        let back: ClassificationReport = serde_json::from_str(&s).unwrap();
        assert_eq!(back.confusion, r.confusion);
        assert_eq!(back.per_class, r.per_class);
    }
}
