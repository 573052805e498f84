//! The learned student→teacher projections (TinyBERT's W_h, W_e) as strategy state: both
//! distillation objectives keep them in a store of their own and carry them in the trainer's
//! checkpoint through these two functions.

use tch::{nn, Tensor};
use whetstone_train::{StrategyState, TrainError};

/// The variables of `store`, sorted by name (a stable order for checkpoints).
pub(super) fn variables(store: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = store.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// `state` with every projection of `store` added.
pub(super) fn save(store: &nn::VarStore, mut state: StrategyState) -> StrategyState {
    for (name, t) in variables(store) {
        state = state.with_tensor(name, &t);
    }
    state
}

/// Copy the projections of `state` into `store`. A tensor the store does not have is refused
/// (the widths or loss weights changed since the checkpoint); `what` names the objective.
pub(super) fn load(store: &nn::VarStore, state: &StrategyState, what: &str) -> whetstone_train::Result<()> {
    let vars = variables(store);
    if let Some((name, _)) = state.tensors.iter().find(|(n, _)| !vars.iter().any(|(v, _)| v == n)) {
        return Err(TrainError::State(format!(
            "the checkpoint holds `{name}`, which this {what} does not have: its projections (the student's or teacher's width, or the loss weights) changed"
        )));
    }
    for (name, t) in &vars {
        state.copy_into(name, t)?;
    }
    Ok(())
}
