//! The adv section: adversarial and consistency training, with robust accuracy.

use crate::Study;
use anyhow::Result;
use serde_json::Value;

pub fn run(_study: &mut Study) -> Result<()> {
    anyhow::bail!("the adv section is not wired yet")
}

pub fn report(_study: &Study, _md: &mut String, _cells: &mut Vec<Value>) {}
