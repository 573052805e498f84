//! One optimiser over several parameter stores: a student's and, e.g., a distillation's
//! projections, which live in a store of their own so that the student's checkpoint stays an
//! ordinary model.

use crate::error::{CompressError, Result};
use tch::nn::VarStore;
use whetstone_optim::{OptimConfig, Optimizer};

/// The optimiser `config` describes over the trainable variables of every store in `stores`
/// (at least one). Several non-empty stores get one optimiser each, stepped together
/// ([`whetstone_optim::Grouped`]); their variable names must differ. Empty stores are left out.
///
/// ```
/// use tch::{nn, nn::VarStore, Device};
/// let (student, projections) = (VarStore::new(Device::Cpu), VarStore::new(Device::Cpu));
/// let _a = nn::linear(student.root() / "dense", 4, 2, Default::default());
/// let _b = nn::linear(projections.root() / "proj", 2, 3, Default::default());
/// let opt = whetstone_compress::build_optimizer(&whetstone_optim::OptimConfig::default(), &[&student, &projections])?;
/// assert_eq!(opt.params().len(), 4);
/// # Ok::<(), whetstone_compress::CompressError>(())
/// ```
pub fn build_optimizer(config: &OptimConfig, stores: &[&VarStore]) -> Result<Box<dyn Optimizer>> {
    let non_empty: Vec<&VarStore> = stores.iter().copied().filter(|vs| !vs.trainable_variables().is_empty()).collect();
    match non_empty.as_slice() {
        [] => match stores.first() {
            Some(vs) => Ok(config.build(vs)?),
            None => Err(CompressError::Config("an optimiser needs at least one store of parameters".into())),
        },
        [vs] => Ok(config.build(vs)?),
        many => {
            let mut seen = std::collections::BTreeSet::new();
            let mut groups = Vec::new();
            for vs in many {
                let names: Vec<String> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).map(|(n, _)| n).collect();
                if let Some(n) = names.iter().find(|n| !seen.insert(n.to_string())) {
                    return Err(CompressError::Config(format!("two parameter stores both hold `{n}`: one optimiser cannot tell them apart")));
                }
                groups.push((1.0, names, config.build(vs)?));
            }
            Ok(Box::new(whetstone_optim::Grouped::new(groups)))
        }
    }
}
