//! The mtl section: rotten-tomatoes alone and with other tasks, per loss weighting.

use crate::Study;
use anyhow::Result;
use serde_json::Value;

pub fn run(_study: &mut Study) -> Result<()> {
    anyhow::bail!("the mtl section is not wired yet")
}

pub fn report(_study: &Study, _md: &mut String, _cells: &mut Vec<Value>) {}
