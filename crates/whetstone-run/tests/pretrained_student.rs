//! `distill.student` may name a pretrained encoder (a Hugging Face BERT folder, or a
//! `whetstone pretrain` run folder standing for its `encoder/`, e.g. a general-distilled
//! student): the student starts from its weights with a fresh head, and must share the
//! teacher's tokenizer.

use tch::{nn::VarStore, Device};
use whetstone_run::compress::{build_student, distill, CompressConfig, Source, StudentInit, StudentSpec};
use whetstone_run::RunFolder;

#[path = "../../whetstone-train/tests/common/tiny_bert.rs"]
mod tiny_bert;

#[path = "common/teacher.rs"]
mod teacher;
use teacher::{tiny_teacher, write_reviews};

#[test]
fn a_pretrained_encoder_is_a_student_that_starts_from_its_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    tiny_bert::tiny_checkpoint(&ckpt);
    let csv = tmp.path().join("reviews.csv");
    write_reviews(&csv, &tiny_bert::corpus(80));
    let teacher = tiny_teacher(&tmp.path().join("teacher"), &csv, Some(&ckpt), 90);
    let source = Source::open(&teacher, Some("cpu")).unwrap();
    let saved = tiny_bert::checkpoint_tensors(&ckpt);

    // The checkpoint folder itself, and a pretrain-run-like folder holding it as encoder/.
    let run = tmp.path().join("pretrain-run");
    std::fs::create_dir_all(run.join("encoder")).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(ckpt.join(f), run.join("encoder").join(f)).unwrap();
    }
    for dir in [&ckpt, &run] {
        let mut vs = VarStore::new(Device::Cpu);
        let (config, student) = build_student(&StudentSpec::Run(dir.clone()), StudentInit::Svd, source.transformer().unwrap(), &teacher, &mut vs).unwrap();
        assert_eq!((config.encoder.layers, config.encoder.hidden), (2, 16));
        let params = student.encoder().named_parameters();
        assert!(!params.is_empty());
        for (name, t) in &params {
            assert!(t.equal(tiny_bert::get(&saved, name)), "{name} does not start from the checkpoint ({})", dir.display());
        }
        assert_eq!(student.head().num_labels(), 2);
    }

    // End to end: `whetstone distill` with distill.student naming the checkpoint.
    let overrides: Vec<String> = ["threads=1", "latency_iters=2", "throughput_iters=1", "distill.epochs=1", "train_limit=16"].iter().map(|s| s.to_string()).chain([format!("distill.student={:?}", run.display().to_string())]).collect();
    let config = CompressConfig::parse("test", "", &overrides).unwrap();
    let out = tmp.path().join("student");
    let done = distill(&teacher, &config, &RunFolder::At(out.clone()), true).unwrap();
    assert!(out.join("metrics.json").is_file());
    assert!((0.0..=1.0).contains(&done.test.accuracy));

    // A teacher with another tokenizer cannot teach that student: a clear error, no folder.
    let scratch = tiny_teacher(&tmp.path().join("scratch"), &csv, None, 90);
    let other = Source::open(&scratch, Some("cpu")).unwrap();
    let mut vs = VarStore::new(Device::Cpu);
    let e = build_student(&StudentSpec::Run(ckpt.clone()), StudentInit::Svd, other.transformer().unwrap(), &scratch, &mut vs).unwrap_err().to_string();
    assert!(e.contains("tokenizer") && e.contains("ckpt"), "{e}");
    let out = tmp.path().join("no-student");
    assert!(distill(&scratch, &config, &RunFolder::At(out.clone()), true).is_err());
    assert!(!out.exists());
}
