//! Which teacher layer each student layer learns from.

use crate::error::{CompressError, Result};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Student-to-teacher layer mapping for hidden-state and attention transfer.
///
/// ```
/// use whetstone_compress::LayerMapping;
/// assert_eq!(LayerMapping::Uniform.resolve(2, 6)?, vec![(0, 2), (1, 5)]);
/// assert_eq!(LayerMapping::Last.resolve(2, 6)?, vec![(1, 5)]);
/// assert_eq!("0:1,1:3".parse::<LayerMapping>()?.resolve(2, 4)?, vec![(0, 1), (1, 3)]);
/// assert!("middle".parse::<LayerMapping>().is_err());
/// # Ok::<(), whetstone_compress::CompressError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LayerMapping {
    /// Student layer m (1-based) learns from teacher layer m·T/S (TinyBERT's g(m) = m·N/M):
    /// every other layer for a half-depth student.
    #[default]
    Uniform,
    /// Only the last layers are paired.
    Last,
    /// Explicit 0-based `(student, teacher)` pairs.
    Explicit(Vec<(usize, usize)>),
}

impl LayerMapping {
    /// 0-based `(student layer, teacher layer)` pairs for a student of `student` layers and a
    /// teacher of `teacher` layers.
    pub fn resolve(&self, student: usize, teacher: usize) -> Result<Vec<(usize, usize)>> {
        if student == 0 || teacher == 0 {
            return Err(CompressError::Mapping(format!("student ({student}) and teacher ({teacher}) need at least one layer")));
        }
        match self {
            LayerMapping::Uniform => {
                if teacher < student {
                    return Err(CompressError::Mapping(format!("uniform mapping needs a teacher at least as deep as the student, got {teacher} < {student} layers")));
                }
                Ok((0..student).map(|i| (i, (i + 1) * teacher / student - 1)).collect())
            }
            LayerMapping::Last => Ok(vec![(student - 1, teacher - 1)]),
            LayerMapping::Explicit(pairs) => {
                if pairs.is_empty() {
                    return Err(CompressError::Mapping("an explicit mapping needs at least one student:teacher pair".into()));
                }
                if let Some((s, t)) = pairs.iter().find(|(s, t)| *s >= student || *t >= teacher) {
                    return Err(CompressError::Mapping(format!("pair {s}:{t} is out of range: the student has layers 0..{student}, the teacher 0..{teacher}")));
                }
                Ok(pairs.clone())
            }
        }
    }
}

impl FromStr for LayerMapping {
    type Err = CompressError;
    /// `uniform`, `last`, or `s:t,s:t,…` (0-based).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "uniform" => Ok(LayerMapping::Uniform),
            "last" => Ok(LayerMapping::Last),
            _ => {
                let unknown = || CompressError::Unknown { what: "layer mapping", name: s.into(), expected: "uniform, last, or explicit pairs like 0:1,1:3".into() };
                let pairs = s
                    .split(',')
                    .map(|p| {
                        let (a, b) = p.trim().split_once(':').ok_or_else(unknown)?;
                        Ok((a.trim().parse().map_err(|_| unknown())?, b.trim().parse().map_err(|_| unknown())?))
                    })
                    .collect::<Result<Vec<(usize, usize)>>>()?;
                Ok(LayerMapping::Explicit(pairs))
            }
        }
    }
}
