//! Schedules as recipes write them: TOML shapes, defaults, the round trip the recipe loader relies
//! on, range checks, and behaviour at the edges (no torch needed).

use toml::Value;
use whetstone_optim::{OneCycle, PlateauConfig, PlateauMode, Schedule, Scheduler};

fn parse(text: &str) -> Schedule {
    toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Every key of `given` is present in `known` (how whetstone-train spots unknown keys).
fn keys_survive(given: &Value, known: &Value, path: &str) {
    if let (Value::Table(g), Value::Table(k)) = (given, known) {
        for (key, gv) in g {
            let kv = k.get(key).unwrap_or_else(|| panic!("key `{path}{key}` is dropped on re-serialisation: {known}"));
            keys_survive(gv, kv, &format!("{path}{key}."));
        }
    }
}

const SHAPES: &[&str] = &[
    "kind = \"constant\"",
    "kind = \"warmup-linear\"\nwarmup_ratio = 0.06",
    "kind = \"warmup-linear\"\nwarmup_steps = 100",
    "kind = \"warmup-cosine\"\nwarmup_ratio = 0.1\nmin_ratio = 0.1",
    "kind = \"warmup-constant\"\nwarmup_steps = 10",
    "kind = \"warmup\"\nwarmup_steps = 100\nthen = { kind = \"cosine\", min_ratio = 0.1 }",
    "kind = \"warmup\"\nwarmup_ratio = 0.05\nstart_factor = 0.1\n[then]\nkind = \"polynomial\"\npower = 2.0\nend_factor = 0.01",
    "kind = \"warmup\"\nwarmup_steps = 5\nthen = { kind = \"warmup\", warmup_steps = 3, then = { kind = \"exponential\", gamma = 0.9 } }",
    "kind = \"warmup\"\nwarmup_steps = 50\nthen = { kind = \"reduce-on-plateau\", mode = \"max\", patience = 2 }",
    "kind = \"linear\"\nstart_factor = 1.0\nend_factor = 0.1",
    "kind = \"cosine\"",
    "kind = \"polynomial\"\npower = 0.5",
    "kind = \"step\"\nstep_size = 1000\ngamma = 0.5",
    "kind = \"multi-step\"\nmilestones = [100, 200]",
    "kind = \"exponential\"\ngamma = 0.999",
    "kind = \"inverse-sqrt\"\nwarmup_steps = 4000",
    "kind = \"one-cycle\"\npct_start = 0.25\nanneal = \"linear\"\nthree_phase = true",
    "kind = \"reduce-on-plateau\"\nfactor = 0.5\npatience = 3\nthreshold_mode = \"abs\"\ncooldown = 1\nmin_factor = 0.01",
];

#[test]
fn every_toml_shape_parses_validates_and_round_trips() {
    for text in SHAPES {
        let given: Value = toml::from_str(text).unwrap();
        let s = parse(text);
        s.validate().unwrap_or_else(|e| panic!("{text}: {e}"));
        let known = Value::try_from(&s).unwrap();
        keys_survive(&given, &known, "");
        assert_eq!(known.clone().try_into::<Schedule>().unwrap(), s, "{text}");
        for t in [0, 1, 99, 500, 999, 1000, 5000] {
            let f = s.factor(t, 1000);
            assert!(f.is_finite() && f >= 0.0, "{text}: factor({t}) = {f}");
        }
    }
}

#[test]
fn legacy_kinds_equal_their_warmup_compositions() {
    let pairs = [
        ("kind = \"warmup-linear\"\nwarmup_ratio = 0.06", "kind = \"warmup\"\nwarmup_ratio = 0.06\nthen = { kind = \"linear\" }"),
        ("kind = \"warmup-cosine\"\nwarmup_steps = 30\nmin_ratio = 0.2", "kind = \"warmup\"\nwarmup_steps = 30\nthen = { kind = \"cosine\", min_ratio = 0.2 }"),
        ("kind = \"warmup-constant\"\nwarmup_steps = 30", "kind = \"warmup\"\nwarmup_steps = 30"),
    ];
    for (old, new) in pairs {
        let (a, b) = (parse(old), parse(new));
        for t in 0..1200 {
            assert_eq!(a.factor(t, 1000), b.factor(t, 1000), "{old} vs {new} at {t}");
        }
    }
    assert_eq!(Schedule::default(), parse("kind = \"warmup-linear\"\nwarmup_ratio = 0.06"));
}

#[test]
fn warmup_then_one_cycle_is_one_cycle_shifted() {
    let s = parse("kind = \"warmup\"\nwarmup_steps = 40\nthen = { kind = \"one-cycle\" }");
    let c = Schedule::OneCycle(OneCycle::default());
    for t in 0..40 {
        assert_eq!(s.factor(t, 240), t as f64 / 40.0);
    }
    for t in 40..240 {
        assert_eq!(s.factor(t, 240), c.factor(t - 40, 200));
    }
}

#[test]
fn unknown_keys_and_bad_values_are_rejected() {
    for text in [
        "kind = \"cosine\"\nmin_lr = 0.1",
        "kind = \"warmup\"\nwarmup_steps = 1\nthen = { kind = \"step\", stepsize = 3 }",
        "kind = \"one-cycle\"\nmax_lr = 3.0",
        "kind = \"reduce-on-plateau\"\npatince = 3",
        "kind = \"cosine-annealing\"",
        "kind = \"step\"",
    ] {
        assert!(toml::from_str::<Schedule>(text).is_err(), "accepted: {text}");
    }
    for text in [
        "kind = \"cosine\"\nmin_ratio = 1.5",
        "kind = \"warmup\"\nwarmup_ratio = 2.0",
        "kind = \"warmup\"\nwarmup_steps = 1\nthen = { kind = \"exponential\", gamma = -1.0 }",
        "kind = \"step\"\nstep_size = 0",
        "kind = \"one-cycle\"\npct_start = 1.5",
        "kind = \"one-cycle\"\ndiv_factor = 0.0",
        "kind = \"reduce-on-plateau\"\nfactor = 1.0",
        "kind = \"inverse-sqrt\"\nwarmup_steps = 10\ntimescale = 0",
        "kind = \"polynomial\"\nend_factor = -0.1",
    ] {
        let e = parse(text).validate().expect_err(text).to_string();
        assert!(e.contains("schedule"), "{text}: {e}");
    }
}

#[test]
fn decays_hold_their_final_value_past_the_end_and_tolerate_zero_totals() {
    let cos = parse("kind = \"cosine\"\nmin_ratio = 0.1");
    assert!((cos.factor(100, 100) - 0.1).abs() < 1e-15);
    assert!((cos.factor(250, 100) - 0.1).abs() < 1e-15);
    let one = Schedule::OneCycle(OneCycle::default());
    let last = one.factor(99, 100);
    assert_eq!(one.factor(150, 100), last);
    for s in SHAPES.iter().map(|t| parse(t)) {
        for t in 0..3 {
            assert!(s.factor(t, 0).is_finite(), "{s:?}");
        }
    }
}

#[test]
fn inverse_sqrt_is_the_normalised_transformer_schedule() {
    // Vaswani et al.: d^-0.5 · min(n^-0.5, n·w^-1.5) peaks at n = w; divided by that peak it is
    // min(√(w/n), n/w), with n whetstone's step.
    let s = parse("kind = \"inverse-sqrt\"\nwarmup_steps = 4000");
    for n in [1u64, 100, 3999, 4000, 4001, 10_000, 100_000] {
        let expected = ((4000.0 / n as f64).sqrt()).min(n as f64 / 4000.0);
        assert!((s.factor(n, 0) - expected).abs() < 1e-14, "step {n}");
    }
}

#[test]
fn scheduler_multiplies_plateau_into_the_schedule_and_checks_state() {
    let s = parse("kind = \"warmup\"\nwarmup_steps = 10\nthen = { kind = \"reduce-on-plateau\", mode = \"max\", patience = 1, factor = 0.5 }");
    assert_eq!(s.plateau().map(|p| p.mode), Some(PlateauMode::Max));
    let mut sch = Scheduler::new(s).unwrap();
    assert_eq!(sch.factor(5, 100), 0.5);
    for acc in [0.5, 0.6, 0.6, 0.59] {
        sch.observe(acc);
    }
    assert_eq!(sch.factor(50, 100), 0.5);
    assert_eq!(sch.factor(5, 100), 0.25);

    let json = serde_json::to_string(&sch.state().cloned()).unwrap();
    let mut resumed = Scheduler::new(sch.schedule().clone()).unwrap();
    resumed.load_state(serde_json::from_str(&json).unwrap()).unwrap();
    assert_eq!(resumed, sch);

    let mut plain = Scheduler::new(Schedule::default()).unwrap();
    assert_eq!(plain.observe(1.0), 1.0);
    assert!(plain.state().is_none());
    assert!(plain.load_state(sch.state().cloned()).is_err());
    assert!(resumed.load_state(None).is_err());
    assert!(Scheduler::new(Schedule::ReduceOnPlateau(PlateauConfig { factor: 2.0, ..Default::default() })).is_err());
}
