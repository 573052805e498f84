//! Knowledge distillation: losses, layer mappings, schedules, students and the training objective.
//!
//! * [`kd_loss`] / [`logit_distill_loss`]: Hinton's temperature KD mixed with the hard label.
//! * [`hidden_mse`], [`attention_loss`]: TinyBERT's intermediate-layer transfer; attention
//!   probabilities come from [`whetstone_models::LayerOutputs::forward_detailed`], which
//!   computes them explicitly (the usual forward uses the fused kernel, which hides them).
//! * [`LayerMapping`]: uniform, last or explicit.
//! * [`DistillObjective`]: the strategy plugged into the trainer, whose projections and step
//!   count survive a kill and resume; [`TeacherCache`] for logits computed once, keyed by
//!   example index.
//! * [`student_from_teacher`]: DistilBERT-style students; [`svd_embeddings`]: a narrow
//!   student's embeddings projected from the teacher's.
//! * [`GeneralDistillObjective`]: task-agnostic (general) distillation of one encoder into
//!   another on unlabelled text: embedding, hidden-state and attention transfer.

mod cache;
mod general;
mod loss;
mod mapping;
mod objective;
mod projections;
mod schedule;
mod student;

pub use cache::TeacherCache;
pub use general::{GeneralDistillConfig, GeneralDistillObjective, GeneralTerms};
pub use loss::{attention_loss, hidden_mse, kd_loss, logit_distill_loss, AttentionLoss, DistillConfig};
pub use mapping::LayerMapping;
pub use objective::{DistillObjective, DistillTerms};
pub use schedule::ScalarSchedule;
pub use student::{student_from_teacher, svd_embeddings, svd_encoder_embeddings};
