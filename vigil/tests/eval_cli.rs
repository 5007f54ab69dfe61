//! `vigil eval` on the committed set `tests/data/eval_tiny`, against NAB scores worked out by hand.
//!
//! The set (5-minute rows from 2024-03-01 00:00; values 10 ± 0.1 of fixed noise):
//!
//! | file | rows | probation | window (rows) | anomaly |
//! |---|---|---|---|---|
//! | `spikes/early.csv` | 240 | floor(0.15 · 240) = 36 | 150..=169 (12:30–14:05) | 25.0 at row 155 |
//! | `spikes/late.csv` | 200 | floor(0.15 · 200) = 30 | 100..=119 (08:20–09:55) | 25.0 at row 114 |
//! | `quiet/flat.csv` | 200 | 30 | none | none |
//!
//! Inside each window the rows before the spike are exactly 10.0, so no sane detector scores them above
//! the noise elsewhere. The two spikes (15 above a level that never moves more than 0.1) are the two highest
//! scores of the set, whatever the detector. NAB's threshold sweep (highest score first) then goes:
//!
//! - above every score: nothing detected, both windows missed: −2 · fnWeight;
//! - at the higher spike: one window found; at the lower spike: both, and no false positive;
//! - any lower threshold adds rows outside the windows, each a false positive costing
//!   fpWeight · |scaledSigmoid(…)| > 0, or rows inside a window after its spike, which change nothing (a
//!   window counts its earliest detection only); it could only gain by detecting a row in a window before
//!   its spike, and those flat rows score below nearly every noisy row.
//!
//! So the best threshold is the lower spike's score on every profile, and with tpWeight = 1:
//!
//! - early: position −(169 − 155 + 1) / 20 = −0.75; scaledSigmoid(−0.75) = 2 / (1 + e^−3.75) − 1
//!   = 2 / 1.0235177 − 1 = 0.9540448; divided by maxTP = scaledSigmoid(−1) = 0.9866143: 0.9669891.
//! - late: position −(119 − 114 + 1) / 20 = −0.3; scaledSigmoid(−0.3) = 2 / (1 + e^−1.5) − 1
//!   = 2 / 1.2231302 − 1 = 0.6351489; / 0.9866143 = 0.6437662.
//! - raw = 0.9669891 + 0.6437662 = 1.6107553 on all three profiles (no false positive, no miss).
//!
//! Normalisation, `100 · (raw − null) / (perfect − null)`: perfect = 2 windows · tpWeight = 2; null = the
//! null detector's best, detecting nothing = −2 · fnWeight (detecting every row gains 2 · tpWeight but adds
//! 504 false positives, costing over 40 even at fpWeight 0.11):
//!
//! - standard (fp 0.11, fn 1): 100 · (1.6107553 + 2) / (2 + 2) = 90.27
//! - reward_low_FP_rate (fp 0.22, fn 1): the same, 90.27
//! - reward_low_FN_rate (fp 0.11, fn 2): 100 · (1.6107553 + 4) / (2 + 4) = 93.51

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::TempDir;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/eval_tiny")
}

fn eval(data: &Path, labels: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("eval")
        .arg("--data")
        .arg(data)
        .arg("--labels")
        .arg(labels)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run vigil eval")
}

/// NAB's scaledSigmoid (numenta/NAB nab/sweeper.py).
fn scaled_sigmoid(x: f64) -> f64 {
    2.0 / (1.0 + (5.0 * x).exp()) - 1.0
}

#[test]
fn eval_prints_the_hand_computed_nab_scores_and_writes_every_file() {
    let dir = TempDir::new("eval");
    let out_dir = dir.0.join("out");
    let labels = tiny().join("labels/combined_windows.json");
    let out = eval(&tiny().join("data"), &labels, &out_dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));

    // The arithmetic of the module comment, then the figures it gives.
    let max_tp = scaled_sigmoid(-1.0);
    let raw = scaled_sigmoid(-15.0 / 20.0) / max_tp + scaled_sigmoid(-6.0 / 20.0) / max_tp;
    assert!((raw - 1.6107553).abs() < 1e-7, "{raw}");
    let standard = 100.0 * (raw + 2.0) / 4.0;
    let low_fn = 100.0 * (raw + 4.0) / 6.0;
    assert_eq!(format!("{standard:.2}"), "90.27");
    assert_eq!(format!("{low_fn:.2}"), "93.51");
    for (profile, expected) in [("standard", "90.27"), ("reward_low_FP_rate", "90.27"), ("reward_low_FN_rate", "93.51")]
    {
        let line = format!("{profile}: {expected}");
        assert!(stdout.lines().any(|l| l == line), "no line {line:?} in:\n{stdout}");
    }
    // At the chosen threshold the two spikes are the only detections: two events, both in a window.
    for profile in ["standard", "reward_low_FP_rate", "reward_low_FN_rate"] {
        let prefix = "events: precision 1.00 recall 1.00 f1 1.00 (";
        assert!(
            stdout.lines().any(|l| l.starts_with(prefix) && l.contains(&format!("({profile} threshold "))),
            "no perfect events line for {profile} in:\n{stdout}"
        );
    }

    // One output per input, under the same sub-folder, every row kept with its timestamp and value as read.
    for name in ["spikes/early.csv", "spikes/late.csv", "quiet/flat.csv"] {
        let input = std::fs::read_to_string(tiny().join("data").join(name)).unwrap();
        let output = std::fs::read_to_string(out_dir.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", out_dir.join(name).display()));
        let mut lines = output.lines();
        assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"), "{name}");
        let rows: Vec<&str> = lines.collect();
        let inputs: Vec<&str> = input.lines().skip(1).collect();
        assert_eq!(rows.len(), inputs.len(), "{name}");
        for (row, input) in rows.iter().zip(&inputs) {
            let (kept, score) = row.rsplit_once(',').unwrap();
            assert_eq!(kept, *input, "{name}");
            let score: f64 = score.parse().unwrap();
            assert!((0.0..=1.0).contains(&score), "{name}: {row}");
        }
    }
}

#[test]
fn eval_names_the_file_and_line_at_fault() {
    let dir = TempDir::new("eval-bad");
    let data = dir.0.join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/bad.csv"), "timestamp,value\n2024-03-01 00:00:00,1\n2024-03-01 00:05:00,oops\n")
        .unwrap();
    let labels = dir.0.join("labels.json");
    std::fs::write(&labels, r#"{"sub/bad.csv": []}"#).unwrap();
    let out = eval(&data, &labels, &dir.0.join("out"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sub/bad.csv:3") && stderr.contains("oops"), "{stderr}");

    // A data file the label file does not know.
    std::fs::write(&labels, r#"{"sub/other.csv": []}"#).unwrap();
    let out = eval(&data, &labels, &dir.0.join("out"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no entry \"sub/bad.csv\""), "{stderr}");
}
