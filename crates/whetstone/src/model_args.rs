//! The flags that pick a trained model to answer with: shared by `predict` and `serve`.

use clap::Args;
use std::path::PathBuf;
use whetstone_run::Precision;

/// Which run answers, where, in what precision, and (multi-task runs) with which head.
#[derive(Args)]
pub struct ModelArgs {
    /// The run: a name under --runs-dir, or a folder.
    #[arg(long, value_name = "RUN")]
    pub run: String,
    /// Folder that holds runs.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// cpu, cuda, cuda:N or auto [default: the run's].
    #[arg(long)]
    pub device: Option<String>,
    /// Precision of inference: fp32, bf16 or fp16 [default: the run's recipe's; an int8 run
    /// answers with its int8 model].
    #[arg(long, value_parser = crate::precision_arg)]
    pub precision: Option<Precision>,
    /// A multi-task run's task whose head answers (sequence: class and probability; token:
    /// `word/TAG` per whitespace-separated word).
    #[arg(long)]
    pub task: Option<String>,
}

impl ModelArgs {
    /// The run's folder.
    pub fn dir(&self) -> PathBuf {
        whetstone_run::resume_dir(&self.runs_dir, &self.run)
    }
}
